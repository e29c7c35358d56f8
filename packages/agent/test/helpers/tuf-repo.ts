import { createHash, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';
import { canonicalize } from '@tufjs/canonical-json';
import { Key, MetaFile, Metadata, Root, Signature, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import type { PatchManifest } from '@livegraft/protocol';

const SPEC_VERSION = '1.0.31';
const DAY_MS = 24 * 3600 * 1000;

export interface SigningKey {
  key: Key;
  privateKey: KeyObject;
}

/** An ed25519 key as TUF describes it (keyid = sha256 of the canonical key). */
export function newKey(): SigningKey {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(-32).toString('hex');
  const body = { keytype: 'ed25519', scheme: 'ed25519', keyval: { public: raw } };
  const keyID = createHash('sha256').update(canonicalize(body)).digest('hex');
  return { key: new Key({ keyID, keyType: 'ed25519', scheme: 'ed25519', keyVal: { public: raw } }), privateKey };
}

const signer =
  (k: SigningKey) =>
  (data: Buffer): Signature =>
    new Signature({ keyID: k.key.keyID, sig: sign(null, data, k.privateKey).toString('hex') });

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const bytesOf = (md: Metadata<Root | Targets | Snapshot | Timestamp>): Buffer =>
  Buffer.from(JSON.stringify(md.toJSON()));

export interface RepoTarget {
  path: string;
  bytes: Buffer;
  manifest: PatchManifest;
  /** The signed custom data, when not a kernel level's (`{ livegraft: { manifest } }`). */
  custom?: unknown;
}

/**
 * A real TUF repository built with @tufjs/models, the way the server builds
 * one: ed25519 keys, consistent snapshots, publish order targets -> snapshot
 * -> timestamp. Files are kept in memory by their served name; tests tamper
 * with them to play a malicious or broken mirror.
 */
export class TestRepo {
  readonly files = new Map<string, Buffer>();
  rootKey = newKey();
  readonly targetsKey = newKey();
  readonly snapshotKey = newKey();
  readonly timestampKey = newKey();
  rootVersion = 0;
  targetsVersion = 0;
  snapshotVersion = 0;
  timestampVersion = 0;
  /** Expiry of metadata signed from now on. */
  expiresInMs = 365 * DAY_MS;
  readonly targets = new Map<string, RepoTarget>();

  constructor() {
    this.#signRoot([this.rootKey]);
    this.publish();
  }

  #expires(): string {
    return new Date(Date.now() + this.expiresInMs).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }

  #signRoot(signers: SigningKey[]): void {
    this.rootVersion++;
    const root = new Root({
      version: this.rootVersion,
      specVersion: SPEC_VERSION,
      expires: this.#expires(),
      consistentSnapshot: true,
    });
    root.addKey(this.rootKey.key, 'root');
    root.addKey(this.targetsKey.key, 'targets');
    root.addKey(this.snapshotKey.key, 'snapshot');
    root.addKey(this.timestampKey.key, 'timestamp');
    const md = new Metadata(root);
    for (const s of signers) md.sign(signer(s), true);
    this.files.set(`${this.rootVersion}.root.json`, bytesOf(md));
  }

  /** The current root's bytes: what the server hands out at enrolment. */
  rootBytes(version = this.rootVersion): Buffer {
    const b = this.files.get(`${version}.root.json`);
    if (b === undefined) throw new Error(`no root version ${version}`);
    return b;
  }

  /** A new root with a new root key, signed by the old and the new key (as the spec requires). */
  rotateRoot(): void {
    const old = this.rootKey;
    this.rootKey = newKey();
    this.#signRoot([old, this.rootKey]);
    this.publish();
  }

  setTarget(path: string, bytes: Buffer, manifest: PatchManifest): void {
    this.targets.set(path, { path, bytes, manifest });
  }

  /** A target with custom data of its own (a user-space level: `{ livegraft: { userspace } }`). */
  setCustomTarget(path: string, bytes: Buffer, custom: unknown): void {
    this.targets.set(path, { path, bytes, manifest: {} as PatchManifest, custom });
  }

  /**
   * Signs a new targets, snapshot and timestamp version over the current
   * target set; `targetsSigner` replaces the targets key (a forgery).
   */
  publish(opts: { targetsSigner?: SigningKey } = {}): void {
    this.targetsVersion++;
    const targets = new Targets({ version: this.targetsVersion, specVersion: SPEC_VERSION, expires: this.#expires() });
    for (const t of this.targets.values()) {
      const hash = sha256(t.bytes);
      targets.addTarget(
        new TargetFile({
          path: t.path,
          length: t.bytes.length,
          hashes: { sha256: hash },
          unrecognizedFields: { custom: (t.custom ?? { livegraft: { manifest: t.manifest } }) as never },
        }),
      );
      const slash = t.path.lastIndexOf('/');
      this.files.set(`targets/${t.path.slice(0, slash)}/${hash}.${t.path.slice(slash + 1)}`, t.bytes);
    }
    const tmd = new Metadata(targets);
    tmd.sign(signer(opts.targetsSigner ?? this.targetsKey));
    const tBytes = bytesOf(tmd);
    this.files.set(`${this.targetsVersion}.targets.json`, tBytes);
    this.#publishSnapshot(tBytes);
  }

  #publishSnapshot(targetsBytes: Buffer): void {
    this.snapshotVersion++;
    const snap = new Snapshot({
      version: this.snapshotVersion,
      specVersion: SPEC_VERSION,
      expires: this.#expires(),
      meta: {
        'targets.json': new MetaFile({
          version: this.targetsVersion,
          length: targetsBytes.length,
          hashes: { sha256: sha256(targetsBytes) },
        }),
      },
    });
    const smd = new Metadata(snap);
    smd.sign(signer(this.snapshotKey));
    const sBytes = bytesOf(smd);
    this.files.set(`${this.snapshotVersion}.snapshot.json`, sBytes);
    this.signTimestamp(sBytes);
  }

  /** A new timestamp over the given snapshot bytes (tests pass mismatched ones for mix-and-match). */
  signTimestamp(snapshotBytes: Buffer, opts: { version?: number; snapshotVersion?: number } = {}): void {
    this.timestampVersion = opts.version ?? this.timestampVersion + 1;
    const ts = new Timestamp({
      version: this.timestampVersion,
      specVersion: SPEC_VERSION,
      expires: this.#expires(),
      snapshotMeta: new MetaFile({
        version: opts.snapshotVersion ?? this.snapshotVersion,
        length: snapshotBytes.length,
        hashes: { sha256: sha256(snapshotBytes) },
      }),
    });
    const md = new Metadata(ts);
    md.sign(signer(this.timestampKey));
    this.files.set('timestamp.json', bytesOf(md));
  }

  /** Served bytes of a target, by TUF target path. */
  targetUrlPath(path: string): string {
    const t = this.targets.get(path);
    if (t === undefined) throw new Error(`no target ${path}`);
    const slash = path.lastIndexOf('/');
    return `targets/${path.slice(0, slash)}/${sha256(t.bytes)}.${path.slice(slash + 1)}`;
  }
}
