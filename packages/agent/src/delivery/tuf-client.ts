import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
import {
  LivegraftError,
  TUF_METADATA_PATH,
  TUF_TARGETS_PATH,
  targetCustomValidator,
  userspaceTargetCustomValidator,
  type PatchManifest,
  type UserspaceManifest,
} from '@livegraft/protocol';
import { Metadata, MetadataKind, type Root } from '@tufjs/models';
import { Updater, type TargetFile } from 'tuf-js';
import type { FetchFn } from './client.ts';
import { writeFileAtomic } from '../lib/fs-atomic.ts';
import type { Logger } from '../lib/log.ts';
import { GuardedFetcher, fsWriteError, type DeliveryLimits, type WriteChunk } from './tuf-fetcher.ts';

/** Caps handed to tuf-js; our fetcher enforces them byte by byte. */
export const TUF_ROOT_MAX_BYTES = 512_000;
export const TUF_TIMESTAMP_MAX_BYTES = 16_384;
export const TUF_SNAPSHOT_MAX_BYTES = 2_000_000;
export const TUF_TARGETS_MAX_BYTES = 5_000_000;
/** Root versions walked in one update; a real repository rotates its root a few times a year. */
export const TUF_MAX_ROOT_ROTATIONS = 32;
const ROLE_FILES = ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json'] as const;

/**
 * Maps what tuf-js throws to stable codes. tuf-js does not export its error
 * classes, and wraps snapshot/targets failures in a RuntimeError that keeps
 * only the text, so class names and messages are both looked at.
 */
/** Class name and message of anything thrown, without trusting its toString or getters. */
function describeThrown(err: unknown): { name: string; message: string } {
  let name = '';
  let message: string;
  try {
    const n: unknown = (err as Error | undefined)?.constructor?.name;
    if (typeof n === 'string') name = n;
  } catch {
    /* a hostile getter: no name */
  }
  try {
    const m: unknown = (err as Error | undefined)?.message;
    message = typeof m === 'string' ? m : String(err);
  } catch {
    message = Object.prototype.toString.call(err);
  }
  return { name, message };
}

export function tufError(err: unknown, fetcher?: GuardedFetcher): LivegraftError {
  if (err instanceof LivegraftError) return err;
  const { name, message } = describeThrown(err);
  const text = `${name}: ${message}`;
  const wrapped = (code: string, what: string): LivegraftError =>
    new LivegraftError(code, `${what}: ${message}`, { cause: err });
  if (fetcher?.lastFailure !== undefined && /RuntimeError/.test(name)) return fetcher.lastFailure;
  if (/ENOSPC|EDQUOT/.test(text)) return fsWriteError('cannot persist TUF metadata', err);
  if (/PersistError/.test(name)) return wrapped('STAGING_WRITE_FAILED', 'cannot persist TUF metadata');
  if (/DownloadHTTPError/.test(name)) return wrapped('TUF_FILE_MISSING', 'the repository lacks a file it must serve');
  if (/DownloadLengthMismatchError|Max length/.test(text))
    return wrapped('DOWNLOAD_TOO_LARGE', 'a download ran past its signed length');
  if (/ExpiredMetadataError|is expired/.test(text))
    return wrapped(
      'TUF_METADATA_EXPIRED',
      `signed metadata has expired by this host's clock (${new Date().toISOString()}); check the clock, then the server's signing`,
    );
  if (
    /EqualVersionError|BadVersionError|less than current|does not match snapshot version|doesn't match timestamp|Expected version/.test(
      text,
    )
  )
    return wrapped('TUF_METADATA_ROLLBACK', 'signed metadata went backwards or skipped a version');
  if (/LengthOrHashMismatchError|hash|length/i.test(text))
    return wrapped('TUF_HASH_MISMATCH', 'a file does not match its signed hash or length');
  if (/UnsignedMetadataError|signature|threshold|signed by \d+\/\d+ keys/i.test(text))
    return wrapped('TUF_SIGNATURE_INVALID', 'signed metadata failed verification');
  return wrapped('TUF_VERIFY_FAILED', 'signed metadata was refused');
}

/** Roots that verified, by the SHA-256 of their bytes: the daemon re-reads the same root every update. */
const verifiedRoots = new Map<string, Metadata<Root>>();
const MAX_VERIFIED_ROOTS = 8;

/** Parses a root and checks that it is signed by a threshold of its own root keys. */
export function parseRoot(bytes: Buffer | string, what: string): Metadata<Root> {
  const digest = createHash('sha256').update(bytes).digest('hex');
  const known = verifiedRoots.get(digest);
  if (known !== undefined) return known;
  try {
    const md = Metadata.fromJSON(MetadataKind.Root, JSON.parse(bytes.toString()) as never);
    if (md.signed.type !== MetadataKind.Root) throw new Error(`type is ${String(md.signed.type)}`);
    md.verifyDelegate('root', md);
    // The same bytes verify the same way; only successes are remembered.
    if (verifiedRoots.size >= MAX_VERIFIED_ROOTS) verifiedRoots.clear();
    verifiedRoots.set(digest, md);
    return md;
  } catch (err) {
    throw new LivegraftError(
      'TUF_ROOT_INVALID',
      `${what} is not a valid self-signed TUF root: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
}

export interface TufClientOptions {
  stateDir: string;
  /** Server or mirror base; http(s):// or file:// (a bundle directory). */
  baseUrl: string;
  limits: DeliveryLimits;
  log: Logger;
  fetch?: FetchFn;
  writeChunk?: WriteChunk;
}

/** One verified view of the repository, valid for the update that opened it. */
export interface TufSession {
  readonly rootVersion: number;
  /** The signed target for a path, with its manifest validated, or undefined when the repository has none. */
  target(path: string): Promise<{ info: TargetFile; manifest: PatchManifest } | undefined>;
  /** The signed user-space target for a path, with its manifest validated, or undefined when the repository has none. */
  userspaceTarget(path: string): Promise<{ info: TargetFile; manifest: UserspaceManifest } | undefined>;
  /** Target paths under `<prefix>` in the verified top-level targets role. */
  listTargets(prefix: string): string[];
  /** Downloads and verifies (length, hashes) a target into `dest`. */
  download(info: TargetFile, dest: string): Promise<void>;
  close(): void;
}

/**
 * The agent's TUF client. It trusts only the root it was enrolled with (or
 * a root that root signed into being) and never fetches one on first use.
 *
 * tuf-js writes metadata in place, so each update runs on a staging copy of
 * <state>/tuf/metadata and the verified files are swapped in (temp + fsync +
 * rename) only after a complete refresh. root.last-good.json is the newest
 * root that completed a refresh: the fallback when root.json is damaged.
 */
export class TufClient {
  readonly dir: string;
  readonly metadataDir: string;
  readonly lastGoodRoot: string;
  readonly #opts: TufClientOptions;

  constructor(opts: TufClientOptions) {
    this.#opts = opts;
    this.dir = join(opts.stateDir, 'tuf');
    this.metadataDir = join(this.dir, 'metadata');
    this.lastGoodRoot = join(this.dir, 'root.last-good.json');
  }

  static forState(stateDir: string): { metadataDir: string; lastGoodRoot: string } {
    const dir = join(stateDir, 'tuf');
    return { metadataDir: join(dir, 'metadata'), lastGoodRoot: join(dir, 'root.last-good.json') };
  }

  /**
   * Makes `bytes` the trust anchor. Cached timestamp/snapshot/targets are
   * dropped: they were verified under the previous anchor.
   */
  static pinRoot(stateDir: string, bytes: Buffer, what: string): Metadata<Root> {
    const md = parseRoot(bytes, what);
    const { metadataDir, lastGoodRoot } = TufClient.forState(stateDir);
    mkdirSync(metadataDir, { recursive: true, mode: 0o700 });
    for (const f of ROLE_FILES) rmSync(join(metadataDir, f), { force: true });
    writeFileAtomic(join(metadataDir, 'root.json'), bytes, 0o600);
    writeFileAtomic(lastGoodRoot, bytes, 0o600);
    return md;
  }

  /** The trusted root's version, or undefined when none is usable (status). */
  static trustedRootVersion(stateDir: string): number | undefined {
    const { metadataDir, lastGoodRoot } = TufClient.forState(stateDir);
    for (const p of [join(metadataDir, 'root.json'), lastGoodRoot]) {
      try {
        return parseRoot(readFileSync(p), p).signed.version;
      } catch {
        // try the next
      }
    }
    return undefined;
  }

  /**
   * The bytes of the root to start from. A damaged root.json falls back to
   * the last-known-good copy (and is repaired from it); with neither, the
   * agent fails closed.
   */
  #trustedRoot(): Buffer {
    const current = join(this.metadataDir, 'root.json');
    let firstProblem: string | undefined;
    if (existsSync(current)) {
      try {
        const bytes = readFileSync(current);
        parseRoot(bytes, current);
        return bytes;
      } catch (err) {
        firstProblem = (err as Error).message;
      }
    }
    if (existsSync(this.lastGoodRoot)) {
      try {
        const bytes = readFileSync(this.lastGoodRoot);
        parseRoot(bytes, this.lastGoodRoot);
        this.#opts.log.log(
          'warn',
          `${firstProblem ?? `${current} is missing`}; falling back to the last-known-good root ${this.lastGoodRoot}`,
        );
        // A stale timestamp/snapshot/targets from a newer root would fail against this one; tuf-js refetches them.
        writeFileAtomic(current, bytes, 0o600);
        return bytes;
      } catch (err) {
        firstProblem = `${firstProblem ?? `${current} is missing`}; ${(err as Error).message}`;
      }
    }
    throw new LivegraftError(
      firstProblem === undefined ? 'TUF_ROOT_MISSING' : 'TUF_ROOT_INVALID',
      firstProblem === undefined
        ? `no trusted TUF root in ${this.metadataDir}: enroll again, or pin one with "livegraft-agent pin-root FILE"`
        : `no usable trusted TUF root (${firstProblem}); refusing to trust any metadata. ` +
            'Pin a root obtained out of band with "livegraft-agent pin-root FILE"',
    );
  }

  /** Refreshes the metadata (root chain, timestamp, snapshot, targets) and returns a session over it. */
  async open(): Promise<TufSession> {
    const rootBytes = this.#trustedRoot();
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    this.#sweepStaging();
    const staging = join(this.dir, `staging.${process.pid}.${randomBytes(4).toString('hex')}`);
    const closeStaging = (): void => rmSync(staging, { recursive: true, force: true });
    const fetcher = new GuardedFetcher({
      limits: this.#opts.limits,
      stagingDir: join(staging, 'downloads'),
      fetch: this.#opts.fetch,
      writeChunk: this.#opts.writeChunk,
    });
    const base = this.#opts.baseUrl.replace(/\/+$/, '');
    let updater: Updater;
    try {
      mkdirSync(join(staging, 'metadata'), { recursive: true, mode: 0o700 });
      // Scratch: a crash leaves a staging directory the next run sweeps, so no fsync here; #commit is durable.
      writeFileSync(join(staging, 'metadata/root.json'), rootBytes, { mode: 0o600 });
      for (const f of ROLE_FILES.slice(1)) {
        const src = join(this.metadataDir, f);
        if (existsSync(src)) copyFileSync(src, join(staging, 'metadata', f));
      }
      updater = new Updater({
        metadataDir: join(staging, 'metadata'),
        metadataBaseUrl: `${base}${TUF_METADATA_PATH}`,
        targetBaseUrl: `${base}${TUF_TARGETS_PATH}`,
        fetcher,
        config: {
          maxRootRotations: TUF_MAX_ROOT_ROTATIONS,
          rootMaxLength: TUF_ROOT_MAX_BYTES,
          timestampMaxLength: TUF_TIMESTAMP_MAX_BYTES,
          snapshotMaxLength: TUF_SNAPSHOT_MAX_BYTES,
          targetsMaxLength: TUF_TARGETS_MAX_BYTES,
          prefixTargetsWithHash: true,
          fetchRetry: 0,
        },
      });
      await updater.refresh();
    } catch (err) {
      closeStaging();
      if (err instanceof LivegraftError) throw err;
      throw tufError(err, fetcher);
    }
    try {
      this.#commit(join(staging, 'metadata'));
    } catch (err) {
      closeStaging();
      throw err instanceof LivegraftError ? err : fsWriteError('cannot store verified TUF metadata', err);
    }
    const stagedTargets = join(staging, 'metadata/targets.json');
    const rootVersion = parseRoot(readFileSync(join(this.metadataDir, 'root.json')), 'root.json').signed.version;
    /** A signed target and the manifest its custom part must carry; undefined when it is not signed. */
    const signedTarget = async <M>(
      path: string,
      what: string,
      parse: (custom: Record<string, unknown>) => M,
    ): Promise<{ info: TargetFile; manifest: M } | undefined> => {
      let info: TargetFile | undefined;
      try {
        info = await updater.getTargetInfo(path);
      } catch (err) {
        throw tufError(err, fetcher);
      }
      if (info === undefined) return undefined;
      try {
        return { info, manifest: parse((info.custom as Record<string, unknown> | undefined) ?? {}) };
      } catch (err) {
        throw new LivegraftError(
          'TUF_TARGET_INVALID',
          `signed target ${path} carries no valid ${what}: ${(err as Error).message}`,
          { cause: err },
        );
      }
    };
    return {
      rootVersion,
      target: (path) =>
        signedTarget(path, 'manifest', (custom) => targetCustomValidator.parse(custom).livegraft.manifest),
      userspaceTarget: (path) =>
        signedTarget(
          path,
          'user-space manifest',
          (custom) => userspaceTargetCustomValidator.parse(custom).livegraft.userspace,
        ),
      listTargets: (prefix) => {
        // tuf-js persisted exactly the bytes it verified in this refresh (or verified the local copy against the snapshot).
        try {
          const doc = JSON.parse(readFileSync(stagedTargets, 'utf8')) as {
            signed?: { targets?: Record<string, unknown> };
          };
          return Object.keys(doc.signed?.targets ?? {}).filter((p) => p.startsWith(prefix));
        } catch {
          return [];
        }
      },
      download: async (info, dest) => {
        try {
          await updater.downloadTarget(info, dest);
        } catch (err) {
          // What did not fit is the module, not the metadata: say so, with its size.
          if (
            /ENOSPC|EDQUOT/.test(describeThrown(err).message) ||
            /ENOSPC|EDQUOT/.test(String((err as NodeJS.ErrnoException)?.code))
          ) {
            throw fsWriteError(`cannot store the module ${info.path} (${info.length} bytes) in ${dirname(dest)}`, err);
          }
          throw tufError(err, fetcher);
        }
      },
      close: closeStaging,
    };
  }

  /** Moves the verified metadata in, one file at a time, each atomically. */
  #commit(stagedDir: string): void {
    mkdirSync(this.metadataDir, { recursive: true, mode: 0o700 });
    for (const f of ROLE_FILES) {
      const src = join(stagedDir, f);
      if (!existsSync(src)) continue;
      const bytes = readFileSync(src);
      const dst = join(this.metadataDir, f);
      let same = false;
      try {
        same = readFileSync(dst).equals(bytes);
      } catch {
        // absent
      }
      if (!same) writeFileAtomic(dst, bytes, 0o600);
      if (f === 'root.json') {
        let sameGood = false;
        try {
          sameGood = readFileSync(this.lastGoodRoot).equals(bytes);
        } catch {
          // absent
        }
        if (!sameGood) writeFileAtomic(this.lastGoodRoot, bytes, 0o600);
      }
    }
  }

  /** Staging dirs left by a killed agent. */
  #sweepStaging(): void {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return;
    }
    for (const n of names) {
      if (!n.startsWith('staging.')) continue;
      const pid = Number(n.split('.')[1]);
      if (pid === process.pid) continue;
      try {
        if (statSync(join(this.dir, n)).isDirectory()) rmSync(join(this.dir, n), { recursive: true, force: true });
      } catch {
        // gone already
      }
    }
  }
}
