import { createHash } from 'node:crypto';
import {
  Key,
  Metadata,
  MetadataKind,
  Root,
  Signature,
  type Snapshot,
  type Targets,
  type Timestamp,
} from '@tufjs/models';
import { tufSign, type TufKeyFile } from '@livegraft/protocol';

/** The TUF specification version our metadata claims to follow. */
export const SPEC_VERSION = '1.0.31';

type JSONObjectLike = ReturnType<Key['toJSON']>;

type AnyMetadata = Metadata<Root> | Metadata<Targets> | Metadata<Snapshot> | Metadata<Timestamp>;

/** TUF wants second precision, "YYYY-MM-DDTHH:MM:SSZ". */
export function tufExpires(at: Date): string {
  return `${at.toISOString().slice(0, 19)}Z`;
}

export function tufKey(key: Pick<TufKeyFile, 'keyid' | 'public'>): Key {
  return new Key({ keyID: key.keyid, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: key.public } });
}

export interface RootKeys {
  root: Pick<TufKeyFile, 'keyid' | 'public'>[];
  rootThreshold: number;
  targets: Pick<TufKeyFile, 'keyid' | 'public'>[];
  snapshot: Pick<TufKeyFile, 'keyid' | 'public'>[];
  timestamp: Pick<TufKeyFile, 'keyid' | 'public'>[];
}

/** An unsigned root with consistent snapshots on and threshold 1 for the online roles. */
export function buildRoot(keys: RootKeys, version: number, expires: Date): Metadata<Root> {
  const keyMap: Record<string, JSONObjectLike> = {};
  const roles: Record<string, { keyids: string[]; threshold: number }> = {};
  for (const role of ['root', 'targets', 'snapshot', 'timestamp'] as const) {
    for (const k of keys[role]) keyMap[k.keyid] = tufKey(k).toJSON();
    roles[role] = { keyids: keys[role].map((k) => k.keyid), threshold: role === 'root' ? keys.rootThreshold : 1 };
  }
  return new Metadata(
    Root.fromJSON({
      _type: 'root',
      spec_version: SPEC_VERSION,
      version,
      expires: tufExpires(expires),
      consistent_snapshot: true,
      keys: keyMap,
      roles,
    }),
  );
}

/** Adds one signature per key (replacing an older one by the same key). */
export function signWith(md: AnyMetadata, keys: TufKeyFile[]): void {
  for (const key of keys) {
    md.sign((data) => {
      const s = tufSign(key, data);
      return new Signature({ keyID: s.keyid, sig: s.sig });
    }, true);
  }
}

export interface Serialized {
  json: string;
  length: number;
  sha256: string;
}

/** The exact bytes we store and serve; hashes in snapshot/timestamp refer to these. */
export function serialize(md: AnyMetadata): Serialized {
  const json = JSON.stringify(md.toJSON());
  const bytes = Buffer.from(json, 'utf8');
  return { json, length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

type MetadataJson = Parameters<typeof Metadata.fromJSON>[1];

export function parseRoot(json: string): Metadata<Root> {
  return Metadata.fromJSON(MetadataKind.Root, JSON.parse(json) as MetadataJson);
}

export function parseTargets(json: string): Metadata<Targets> {
  return Metadata.fromJSON(MetadataKind.Targets, JSON.parse(json) as MetadataJson);
}

export function parseSnapshot(json: string): Metadata<Snapshot> {
  return Metadata.fromJSON(MetadataKind.Snapshot, JSON.parse(json) as MetadataJson);
}

export function parseTimestamp(json: string): Metadata<Timestamp> {
  return Metadata.fromJSON(MetadataKind.Timestamp, JSON.parse(json) as MetadataJson);
}
