import { Key, Metadata, MetadataKind, Root, Signature } from '@tufjs/models';
import { LivegraftError, tufSign, type TufKeyFile, type TufRole } from '@livegraft/protocol';

/** The TUF specification version our metadata claims to follow (same as the server's). */
export const SPEC_VERSION = '1.0.31';
export const ROLES: readonly TufRole[] = ['root', 'targets', 'snapshot', 'timestamp'];

type JSONObject = Parameters<typeof Root.fromJSON>[0];

export function tufExpires(at: Date): string {
  return `${at.toISOString().slice(0, 19)}Z`;
}

function keyJson(k: Pick<TufKeyFile, 'keyid' | 'public'>): JSONObject {
  return new Key({ keyID: k.keyid, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: k.public } }).toJSON();
}

export interface RoleKeys {
  keys: Pick<TufKeyFile, 'keyid' | 'public'>[];
  threshold: number;
}

/** An unsigned root (consistent snapshots on) from each role's keys and threshold. */
export function newRoot(roles: Record<TufRole, RoleKeys>, version: number, expires: Date): Metadata<Root> {
  const keys: Record<string, JSONObject> = {};
  const roleJson: Record<string, JSONObject> = {};
  for (const role of ROLES) {
    const r = roles[role];
    if (r.threshold < 1 || r.threshold > r.keys.length) {
      throw new LivegraftError(
        'TUF_THRESHOLD_INVALID',
        `${role}: threshold ${r.threshold} with ${r.keys.length} key(s)`,
      );
    }
    for (const k of r.keys) keys[k.keyid] = keyJson(k);
    roleJson[role] = { keyids: r.keys.map((k) => k.keyid), threshold: r.threshold };
  }
  return new Metadata(
    Root.fromJSON({
      _type: 'root',
      spec_version: SPEC_VERSION,
      version,
      expires: tufExpires(expires),
      consistent_snapshot: true,
      keys,
      roles: roleJson,
    }),
  );
}

export function parseRootJson(text: string, where: string): Metadata<Root> {
  try {
    return Metadata.fromJSON(MetadataKind.Root, JSON.parse(text) as JSONObject);
  } catch (err) {
    throw new LivegraftError('TUF_ROOT_INVALID', `${where} is not TUF root metadata: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Adds (or replaces) one signature per key. */
export function signRoot(md: Metadata<Root>, keys: readonly TufKeyFile[]): void {
  for (const key of keys) {
    md.sign((data) => {
      const s = tufSign(key, data);
      return new Signature({ keyID: s.keyid, sig: s.sig });
    }, true);
  }
}

export interface ThresholdStatus {
  /** Whose root keys were counted: "self" (this root's) or "previous" (version N-1's). */
  against: 'self' | 'previous';
  valid: number;
  threshold: number;
  ok: boolean;
}

/** How many valid signatures `md` carries from `signer`'s root keys. */
export function rootThreshold(
  signer: Metadata<Root>,
  md: Metadata<Root>,
  against: 'self' | 'previous',
): ThresholdStatus {
  const role = signer.signed.roles['root'];
  const threshold = role?.threshold ?? 1;
  let valid = 0;
  for (const id of role?.keyIDs ?? []) {
    const key = signer.signed.keys[id];
    if (key === undefined) continue;
    try {
      key.verifySignature(md);
      valid++;
    } catch {
      /* missing or bad signature: not counted */
    }
  }
  return { against, valid, threshold, ok: valid >= threshold };
}

export function serializeRoot(md: Metadata<Root>): string {
  return `${JSON.stringify(md.toJSON(), null, 2)}\n`;
}
