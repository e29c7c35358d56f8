import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { MetaFile, Metadata, Root, Snapshot, TargetFile, Targets, Timestamp } from '@tufjs/models';
import type { Logger } from 'pino';
import type { Database } from '../db/schema.ts';
import {
  generateTufKey,
  LivegraftError,
  tufCanonicalJson,
  tufTargetPath,
  TUF_ONLINE_ROLES,
  type TufKeyFile,
  type TufRole,
  type UserspaceManifest,
} from '@livegraft/protocol';
import { keyFilePath, loadKeyFile, loadOnlineKeys, writeKeyFile, type OnlineKeys } from './keyring.ts';
import {
  buildRoot,
  parseRoot,
  parseSnapshot,
  parseTargets,
  parseTimestamp,
  serialize,
  signWith,
  SPEC_VERSION,
  tufExpires,
  type Serialized,
} from './metadata.ts';
import {
  DEFAULT_EXPIRY_SEC,
  DEFAULT_REFRESH_INTERVAL_MS,
  KEEP_VERSIONS,
  MAX_EXPIRY_SEC,
  MAX_REFRESH_INTERVAL_MS,
  MAX_SYNC_ATTEMPTS,
  MIN_EXPIRY_SEC,
  MIN_REFRESH_INTERVAL_MS,
  renewalDue,
  ROOT_EXPIRY_WARNING_SEC,
  ROOT_WARNING_EVERY_MS,
} from './policy.ts';
import { readRootFiles, verifyNextRoot, verifySelfSigned } from './roots.ts';
import { TufMetadataStore, type PublishedTarget, type StoredMetadata } from './store.ts';

export interface TufOptions {
  /** Where targets.json, snapshot.json, timestamp.json (and, zero-config, root.json) key files live. */
  keysDir: string;
  /** `N.root.json` files found here are imported at start (chain-verified). */
  rootsDir: string;
  /** More root files to import at start. */
  rootFiles?: readonly string[];
  expirySec?: Partial<Record<TufRole, number>>;
  refreshIntervalMs?: number;
}

export type TufLog = Pick<Logger, 'info' | 'warn' | 'error'>;

export interface TufDeps {
  db: Kysely<Database>;
  clock: () => Date;
  log: TufLog;
  /** More targets to sign beside the kernel levels (user-space levels), with their custom data. */
  extraTargets?: () => Promise<
    { path: string; length: number; sha256: string; custom: { livegraft: { userspace: UserspaceManifest } } }[]
  >;
}

const METADATA_FILE = /^([1-9][0-9]{0,9})\.(root|snapshot|targets)\.json$/;
const TARGET_FILE = /^([0-9a-f]{64})\.([a-z0-9_]{1,55})\.ko$/;

function checkedOptions(o: TufOptions): { expiry: Record<TufRole, number>; intervalMs: number } {
  const expiry = { ...DEFAULT_EXPIRY_SEC, ...o.expirySec };
  for (const [role, sec] of Object.entries(expiry)) {
    if (!Number.isInteger(sec) || sec < MIN_EXPIRY_SEC || sec > MAX_EXPIRY_SEC) {
      throw new LivegraftError(
        'CONFIG_INVALID',
        `TUF ${role} expiry must be ${MIN_EXPIRY_SEC}..${MAX_EXPIRY_SEC} s, not ${sec}`,
      );
    }
  }
  const intervalMs = o.refreshIntervalMs ?? Math.min(DEFAULT_REFRESH_INTERVAL_MS, (expiry.timestamp * 1000) / 4);
  if (intervalMs < MIN_REFRESH_INTERVAL_MS || intervalMs > MAX_REFRESH_INTERVAL_MS) {
    throw new LivegraftError(
      'CONFIG_INVALID',
      `TUF refresh interval must be ${MIN_REFRESH_INTERVAL_MS}..${MAX_REFRESH_INTERVAL_MS} ms, not ${intervalMs}`,
    );
  }
  // Re-signing starts at half the lifetime; a tick must come well before the end of it.
  if (intervalMs * 4 > expiry.timestamp * 1000) {
    throw new LivegraftError(
      'CONFIG_INVALID',
      'the TUF refresh interval must be at most a quarter of the timestamp expiry',
    );
  }
  return { expiry, intervalMs };
}

function addSeconds(at: Date, sec: number): Date {
  return new Date(at.getTime() + sec * 1000);
}

function metaFileFor(row: StoredMetadata): MetaFile {
  const s = serializedRow(row);
  return new MetaFile({ version: row.version, length: s.length, hashes: { sha256: s.sha256 } });
}

function serializedRow(row: StoredMetadata): Serialized {
  const bytes = Buffer.from(row.json, 'utf8');
  return { json: row.json, length: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** Signed only by exactly the given key? A rotated online key means re-signing. */
function signedOnlyBy(md: { signatures: Record<string, unknown> }, keyid: string): boolean {
  const ids = Object.keys(md.signatures);
  return ids.length === 1 && ids[0] === keyid;
}

function targetFileOf(t: PublishedTarget): TargetFile {
  return new TargetFile({
    path: tufTargetPath(t.kernelId, t.level, t.name),
    length: t.size,
    hashes: { sha256: t.sha256 },
    unrecognizedFields: {
      custom: {
        livegraft:
          t.validation === undefined ? { manifest: t.manifest } : { manifest: t.manifest, validation: t.validation },
      },
    },
  });
}

/**
 * The server's TUF repository. Published patch levels are the targets;
 * `sync()` brings targets -> snapshot -> timestamp up to date in that order,
 * each written before the next is signed, so a client that reads
 * timestamp.json first always finds the snapshot and targets it names.
 * Every step is idempotent and derived from the database, so several server
 * nodes sharing one database converge on the same chain.
 */
/** How long this node serves timestamp.json from memory; fleet notices and its own signing clear it sooner. */
export const SERVED_TIMESTAMP_MS = 1000;
/** Versioned metadata files (immutable once stored) kept in memory. */
const SERVED_FILES_MAX = 256;
/** Published targets (kernel, level) kept in memory, and for how long. */
const SERVED_TARGETS_MAX = 1024;
const SERVED_TARGET_MS = 10_000;

export class TufRepository {
  readonly #store: TufMetadataStore;
  /** What agents fetch on every update, kept in memory: versioned files never change once stored. */
  readonly #files = new Map<string, string>();
  /**
   * Versioned files asked for and not stored, and when: every agent asks for the root after its
   * own, so that it sees a rotation. A miss is served for as long as the timestamp is, so a root
   * stored behind this node's back (no notice) is served within that bound.
   */
  readonly #missing = new Map<string, number>();
  #timestamp: { text: string; at: number } | undefined;
  readonly #targets = new Map<string, { value: Omit<PublishedTarget, 'manifest'>; at: number }>();
  readonly #clock: () => Date;
  readonly #log: TufLog;
  readonly #expiry: Record<TufRole, number>;
  readonly #intervalMs: number;
  readonly #keys: OnlineKeys;
  /** Present only when the root key is kept online (zero-config setups): then the server renews the root too. */
  readonly #rootKey: TufKeyFile | undefined;
  readonly #extraTargets: TufDeps['extraTargets'];
  #chain: Promise<void> = Promise.resolve();
  #timer: NodeJS.Timeout | undefined;
  #lastRootWarning = 0;

  private constructor(
    store: TufMetadataStore,
    deps: TufDeps,
    opts: { expiry: Record<TufRole, number>; intervalMs: number },
    keys: OnlineKeys,
    rootKey: TufKeyFile | undefined,
  ) {
    this.#store = store;
    this.#clock = deps.clock;
    this.#log = deps.log;
    this.#expiry = opts.expiry;
    this.#intervalMs = opts.intervalMs;
    this.#keys = keys;
    this.#rootKey = rootKey;
    this.#extraTargets = deps.extraTargets;
  }

  /** Imports roots, loads (or on a first zero-config start, creates) keys, and signs what is due. */
  static async open(options: TufOptions, deps: TufDeps): Promise<TufRepository> {
    const opts = checkedOptions(options);
    const store = new TufMetadataStore(deps.db);
    await importRoots(store, options, deps, opts.expiry.root);
    const root = await currentRoot(store);
    const keys = await loadOnlineKeys(options.keysDir, (msg, path) => deps.log.warn({ path }, msg));
    checkKeysInRoot(root, keys);
    const rootKey = (await loadKeyFile(options.keysDir, 'root'))?.key;
    const usableRootKey =
      rootKey !== undefined &&
      root.signed.roles['root']?.keyIDs.includes(rootKey.keyid) === true &&
      root.signed.roles['root'].threshold === 1
        ? rootKey
        : undefined;
    if (rootKey !== undefined) {
      deps.log.warn(
        { path: keyFilePath(options.keysDir, 'root') },
        'the TUF ROOT private key is on the server: anyone who takes this server can sign a new root. Move it offline (see docs/security.md)',
      );
    }
    const repo = new TufRepository(store, deps, opts, keys, usableRootKey);
    await repo.sync();
    return repo;
  }

  /** The current (newest) root metadata, as a JSON object for the enrol answer. */
  async rootJson(): Promise<Record<string, unknown>> {
    const row = await this.#store.latest('root');
    if (row === undefined) throw new LivegraftError('TUF_ROOT_MISSING', 'no TUF root is stored');
    return JSON.parse(row.json) as Record<string, unknown>;
  }

  /** The text of a served metadata file (`timestamp.json` or `N.role.json`), or undefined. */
  async metadataFile(name: string): Promise<string | undefined> {
    const now = this.#clock().getTime();
    if (name === 'timestamp.json') {
      const t = this.#timestamp;
      if (t !== undefined && now - t.at >= 0 && now - t.at < SERVED_TIMESTAMP_MS) return t.text;
      const text = (await this.#store.latest('timestamp'))?.json;
      this.#timestamp = text === undefined ? undefined : { text, at: now };
      return text;
    }
    const m = METADATA_FILE.exec(name);
    if (m === null) return undefined;
    const hit = this.#files.get(name);
    if (hit !== undefined) return hit;
    const missedAt = this.#missing.get(name);
    if (missedAt !== undefined && now - missedAt >= 0 && now - missedAt < SERVED_TIMESTAMP_MS) return undefined;
    const text = await this.#store.get(m[2] as 'root' | 'snapshot' | 'targets', Number(m[1]));
    if (text !== undefined) {
      this.#missing.delete(name);
      if (this.#files.size >= SERVED_FILES_MAX) this.#files.clear();
      this.#files.set(name, text);
    } else {
      if (this.#missing.size >= SERVED_FILES_MAX) this.#missing.clear();
      this.#missing.set(name, now);
    }
    return text;
  }

  /** Drops what is served from memory, so the next request reads what any node last stored. */
  forgetServed(): void {
    this.#timestamp = undefined;
    this.#files.clear();
    this.#missing.clear();
    this.#targets.clear();
  }

  /**
   * The module hash behind `<kernelId>/<level>/<sha256>.<name>.ko` if that
   * is a published level's consistent-snapshot target name, else undefined.
   */
  async targetSha256(kernelId: string, level: number, file: string): Promise<string | undefined> {
    const m = TARGET_FILE.exec(file);
    if (m === null) return undefined;
    const key = `${kernelId}/${level}`;
    const now = this.#clock().getTime();
    let t = this.#targets.get(key);
    if (t === undefined || now - t.at < 0 || now - t.at >= SERVED_TARGET_MS) {
      const found = await this.#store.publishedTarget(kernelId, level);
      if (found === undefined) {
        this.#targets.delete(key);
        return undefined;
      }
      if (this.#targets.size >= SERVED_TARGETS_MAX) this.#targets.clear();
      t = { value: found, at: now };
      this.#targets.set(key, t);
    }
    if (t.value.sha256 !== m[1] || t.value.name !== m[2]) return undefined;
    return t.value.sha256;
  }

  /** Brings every role up to date; calls are serialized in this process and retried on another node's write. */
  sync(): Promise<void> {
    const run = this.#chain.then(async () => {
      for (let attempt = 0; attempt < MAX_SYNC_ATTEMPTS; attempt++) {
        if (await this.#trySync()) {
          // Whatever this node just signed is served from now on.
          this.forgetServed();
          return;
        }
      }
      throw new LivegraftError(
        'TUF_SYNC_CONFLICT',
        `TUF metadata kept changing under us (${MAX_SYNC_ATTEMPTS} attempts); another server node is signing`,
      );
    });
    this.#chain = run.catch(() => undefined);
    return run;
  }

  /** Starts the periodic re-signing job (timers are unref'ed: it never keeps the process alive). */
  start(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setInterval(() => {
      this.sync().catch((err: unknown) => this.#log.error({ err }, 'TUF refresh failed'));
    }, this.#intervalMs);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.#chain;
  }

  /** One pass; false when another writer took a version first. */
  async #trySync(): Promise<boolean> {
    const now = this.#clock();
    if (!(await this.#renewRoot(now))) return false;
    const root = await currentRoot(this.#store);
    checkKeysInRoot(root, this.#keys);

    const targets = await this.#syncTargets(now);
    if (targets === undefined) return false;
    const snapshot = await this.#syncSnapshot(now, targets);
    if (snapshot === undefined) return false;
    return (await this.#syncTimestamp(now, snapshot)) !== undefined;
  }

  async #renewRoot(now: Date): Promise<boolean> {
    const row = await this.#store.latest('root');
    if (row === undefined) return true;
    const root = parseRoot(row.json);
    if (this.#rootKey === undefined) {
      const left = Date.parse(root.signed.expires) - now.getTime();
      if (left < ROOT_EXPIRY_WARNING_SEC * 1000 && now.getTime() - this.#lastRootWarning >= ROOT_WARNING_EVERY_MS) {
        this.#lastRootWarning = now.getTime();
        this.#log.warn(
          { version: row.version, expires: root.signed.expires },
          'the TUF root expires soon (or has expired): sign a new root version with the offline root key (livegraft keys rotate / sign-root) and restart the server with it',
        );
      }
      return true;
    }
    if (!renewalDue(root.signed.expires, this.#expiry.root, now)) return true;
    const next = new Metadata(
      Root.fromJSON({
        ...root.signed.toJSON(),
        version: row.version + 1,
        expires: tufExpires(addSeconds(now, this.#expiry.root)),
      }),
    );
    signWith(next, [this.#rootKey]);
    const s = serialize(next);
    if (!(await this.#store.insert('root', row.version + 1, s.json, now))) return false;
    this.#log.info({ version: row.version + 1 }, 'TUF root renewed with the online root key');
    return true;
  }

  async #syncTargets(now: Date): Promise<StoredMetadata | undefined> {
    const published = await this.#store.publishedTargets();
    const desired: Record<string, TargetFile> = {};
    for (const t of published) desired[tufTargetPath(t.kernelId, t.level, t.name)] = targetFileOf(t);
    for (const t of (await this.#extraTargets?.()) ?? [])
      desired[t.path] = new TargetFile({
        path: t.path,
        length: t.length,
        hashes: { sha256: t.sha256 },
        unrecognizedFields: { custom: t.custom },
      });
    const row = await this.#store.latest('targets');
    if (row !== undefined) {
      const cur = parseTargets(row.json);
      const same =
        tufCanonicalJson(Object.fromEntries(Object.entries(desired).map(([k, v]) => [k, v.toJSON()]))) ===
        tufCanonicalJson(Object.fromEntries(Object.entries(cur.signed.targets).map(([k, v]) => [k, v.toJSON()])));
      if (
        same &&
        !renewalDue(cur.signed.expires, this.#expiry.targets, now) &&
        signedOnlyBy(cur, this.#keys.targets.keyid)
      ) {
        return row;
      }
    }
    const version = (row?.version ?? 0) + 1;
    const md = new Metadata(
      new Targets({
        version,
        specVersion: SPEC_VERSION,
        expires: tufExpires(addSeconds(now, this.#expiry.targets)),
        targets: desired,
      }),
    );
    return this.#write('targets', md, [this.#keys.targets], now);
  }

  async #syncSnapshot(now: Date, targets: StoredMetadata): Promise<StoredMetadata | undefined> {
    const row = await this.#store.latest('snapshot');
    if (row !== undefined) {
      const cur = parseSnapshot(row.json);
      const meta = cur.signed.meta['targets.json'];
      if (
        meta?.version === targets.version &&
        meta.hashes?.['sha256'] === serializedRow(targets).sha256 &&
        !renewalDue(cur.signed.expires, this.#expiry.snapshot, now) &&
        signedOnlyBy(cur, this.#keys.snapshot.keyid)
      ) {
        return row;
      }
    }
    const version = (row?.version ?? 0) + 1;
    const md = new Metadata(
      new Snapshot({
        version,
        specVersion: SPEC_VERSION,
        expires: tufExpires(addSeconds(now, this.#expiry.snapshot)),
        meta: { 'targets.json': metaFileFor(targets) },
      }),
    );
    return this.#write('snapshot', md, [this.#keys.snapshot], now);
  }

  async #syncTimestamp(now: Date, snapshot: StoredMetadata): Promise<StoredMetadata | undefined> {
    const row = await this.#store.latest('timestamp');
    if (row !== undefined) {
      const cur = parseTimestamp(row.json);
      const meta = cur.signed.snapshotMeta;
      if (
        meta.version === snapshot.version &&
        meta.hashes?.['sha256'] === serializedRow(snapshot).sha256 &&
        !renewalDue(cur.signed.expires, this.#expiry.timestamp, now) &&
        signedOnlyBy(cur, this.#keys.timestamp.keyid)
      ) {
        return row;
      }
    }
    const version = (row?.version ?? 0) + 1;
    const md = new Metadata(
      new Timestamp({
        version,
        specVersion: SPEC_VERSION,
        expires: tufExpires(addSeconds(now, this.#expiry.timestamp)),
        snapshotMeta: metaFileFor(snapshot),
      }),
    );
    return this.#write('timestamp', md, [this.#keys.timestamp], now);
  }

  async #write(
    role: 'targets' | 'snapshot' | 'timestamp',
    md: Metadata<Targets> | Metadata<Snapshot> | Metadata<Timestamp>,
    keys: TufKeyFile[],
    now: Date,
  ): Promise<StoredMetadata | undefined> {
    signWith(md, keys);
    const s = serialize(md);
    const version = md.signed.version;
    if (!(await this.#store.insert(role, version, s.json, now))) return undefined;
    this.#log.info({ role, version, expires: md.signed.expires }, 'TUF metadata signed');
    if (version > KEEP_VERSIONS) await this.#store.prune(role, version - KEEP_VERSIONS + 1);
    return { version, json: s.json };
  }
}

async function currentRoot(store: TufMetadataStore): Promise<Metadata<Root>> {
  const row = await store.latest('root');
  if (row === undefined) throw new LivegraftError('TUF_ROOT_MISSING', 'no TUF root is stored');
  return parseRoot(row.json);
}

function checkKeysInRoot(root: Metadata<Root>, keys: OnlineKeys): void {
  for (const role of TUF_ONLINE_ROLES) {
    const r = root.signed.roles[role];
    const key = keys[role];
    if (r === undefined || !r.keyIDs.includes(key.keyid)) {
      throw new LivegraftError(
        'TUF_KEY_NOT_IN_ROOT',
        `the server's ${role} key ${key.keyid.slice(0, 12)} is not a ${role} key of TUF root version ${root.signed.version} (it lists ${r?.keyIDs.map((k) => k.slice(0, 12)).join(', ') ?? 'none'}); install the matching key file or the root that names it`,
      );
    }
    if (r.threshold !== 1) {
      throw new LivegraftError(
        'TUF_THRESHOLD_UNSUPPORTED',
        `root version ${root.signed.version} wants ${r.threshold} ${role} signatures; the server signs online roles with one key`,
      );
    }
  }
}

/** Adds root files newer than the stored root (each verified against its predecessor); creates a root on a bare first start. */
async function importRoots(
  store: TufMetadataStore,
  options: TufOptions,
  deps: TufDeps,
  rootLifetimeSec: number,
): Promise<void> {
  const files = await readRootFiles(options.rootsDir, options.rootFiles ?? []);
  const row = await store.latest('root');
  let trusted = row === undefined ? undefined : parseRoot(row.json);
  const now = deps.clock();
  for (const f of files) {
    const v = f.md.signed.version;
    if (trusted === undefined) {
      verifySelfSigned(f.md, f.path);
    } else if (v <= trusted.signed.version) {
      const stored = await store.get('root', v);
      if (stored !== undefined && tufCanonicalJson(JSON.parse(stored)) !== tufCanonicalJson(JSON.parse(f.json))) {
        deps.log.warn({ path: f.path, version: v }, 'root file differs from the stored root of that version; ignored');
      }
      continue;
    } else {
      verifyNextRoot(trusted, f.md, f.path);
    }
    await store.insert('root', v, f.json, now);
    deps.log.info({ path: f.path, version: v }, 'TUF root imported');
    trusted = f.md;
  }
  if (trusted !== undefined) return;

  const anyKey = await Promise.all(
    ['root', ...TUF_ONLINE_ROLES].map((r) => loadKeyFile(options.keysDir, r as TufRole)),
  );
  if (anyKey.some((k) => k !== undefined)) {
    throw new LivegraftError(
      'TUF_ROOT_MISSING',
      `there are TUF keys in ${options.keysDir} but no root metadata: put N.root.json in ${options.rootsDir} or pass --tuf-root FILE`,
    );
  }
  const keys = Object.fromEntries(
    ['root', ...TUF_ONLINE_ROLES].map((r) => [r, generateTufKey(r as TufRole, now)]),
  ) as Record<TufRole, TufKeyFile>;
  for (const role of ['root', ...TUF_ONLINE_ROLES] as const) {
    await writeKeyFile(keyFilePath(options.keysDir, role), keys[role]);
  }
  const md = buildRoot(
    {
      root: [keys.root],
      rootThreshold: 1,
      targets: [keys.targets],
      snapshot: [keys.snapshot],
      timestamp: [keys.timestamp],
    },
    1,
    addSeconds(now, rootLifetimeSec),
  );
  signWith(md, [keys.root]);
  await store.insert('root', 1, serialize(md).json, now);
  deps.log.warn(
    { keysDir: options.keysDir },
    'generated a complete TUF key set and root version 1 (zero-config). The ROOT private key is in keys/root.json on this server: move it offline (see docs/security.md)',
  );
}
