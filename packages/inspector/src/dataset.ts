import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync, gzipSync } from 'node:zlib';
import { LivegraftError, validator, ValidationError } from '@livegraft/protocol';
import { parseVersion, type UpstreamVersion } from './version.ts';
import {
  DATASET_FORMAT,
  DATASET_FORMAT_VERSION,
  DatasetFileSchema,
  type CompactCve,
  type DatasetFile,
  type DebianChangelog,
} from './schemas.ts';
import { BranchIndex } from './branch-index.ts';
import { DebianMapping } from './debian.ts';
import { severityBucket, SEVERITY_ORDER } from './severity.ts';

/** The dataset that ships with the package, relative to this file. */
export const DEFAULT_DATASET_PATH = fileURLToPath(new URL('../data/kernel-cves.json.gz', import.meta.url));
/** A dataset file is read whole; refuse anything absurdly large rather than exhaust memory. */
export const MAX_DATASET_BYTES = 256 * 1024 * 1024;
/** Distinct kernels whose evaluation is kept; beyond this the memo is cleared and refilled. */
export const MAX_MEMO_KERNELS = 10_000;

export interface Pair {
  first: UpstreamVersion | null;
  fixed: UpstreamVersion | null;
}

/** One CVE ready for evaluation: the record plus its parsed ranges and derived fixes. */
export interface CveEntry {
  record: CompactCve;
  pairs: Pair[];
  /** Stable branch -> lowest first-fixed version in that branch. */
  stableFixes: Map<string, UpstreamVersion>;
  /** Lowest mainline fix, if any. */
  mainlineFix: UpstreamVersion | null;
}

export function toEntry(record: CompactCve): CveEntry {
  const pairs: Pair[] = record.ranges.map(([f, x]) => ({
    first: f === null ? null : parseVersion(f),
    fixed: x === null ? null : parseVersion(x),
  }));
  const stableFixes = new Map<string, UpstreamVersion>();
  let mainlineFix: UpstreamVersion | null = null;
  for (const p of pairs) {
    const f = p.fixed;
    if (f === null) continue;
    if (f.mainline) {
      if (mainlineFix === null || f.key < mainlineFix.key) mainlineFix = f;
    } else {
      const cur = stableFixes.get(f.branch);
      if (cur === undefined || f.key < cur.key) stableFixes.set(f.branch, f);
    }
  }
  return { record, pairs, stableFixes, mainlineFix };
}

export interface DatasetInfo {
  generatedAt: string;
  sources: DatasetFile['sources'];
  cves: number;
  rejected: number;
  debianPackages: string[];
}

/**
 * The CVE database: records by id plus the lazily built per-branch indexes and the per-kernel
 * memo. Importing records clears both, so results never mix old and new data.
 */
export class CveDatabase {
  readonly entries = new Map<string, CveEntry>();
  readonly rejected: Set<string>;
  readonly debian: DebianMapping;
  generatedAt: string;
  readonly sources: DatasetFile['sources'];
  private readonly branchIndexes = new Map<string, BranchIndex>();
  private orderedCache: CveEntry[] | undefined;
  private indexById: Map<string, number> | undefined;
  /** Keyed by normalised kernel key; values are whatever the evaluator stores (see affected.ts). */
  readonly memo = new Map<string, unknown>();

  constructor(file: DatasetFile) {
    this.generatedAt = file.generatedAt;
    this.sources = file.sources;
    this.rejected = new Set(file.rejected);
    this.debian = new DebianMapping(file.debian);
    for (const r of file.cves) {
      if (this.rejected.has(r.id)) continue;
      this.entries.set(r.id, toEntry(r));
    }
  }

  /**
   * Entries in report order (most severe, highest score, newest id first); branch indexes refer
   * to these positions, so a kernel's findings sort by position alone.
   */
  ordered(): CveEntry[] {
    this.orderedCache ??= [...this.entries.values()].sort(compareEntries);
    return this.orderedCache;
  }

  /** Position of an id in `ordered()`. */
  positionOf(id: string): number | undefined {
    this.indexById ??= new Map(this.ordered().map((e, i) => [e.record.id, i]));
    return this.indexById.get(id);
  }

  branchIndex(branch: UpstreamVersion): BranchIndex {
    let idx = this.branchIndexes.get(branch.branch);
    if (idx === undefined) {
      idx = new BranchIndex(this.ordered(), branch);
      this.branchIndexes.set(branch.branch, idx);
    }
    return idx;
  }

  /** Called after the records change. */
  invalidate(): void {
    this.orderedCache = undefined;
    this.indexById = undefined;
    this.branchIndexes.clear();
    this.memo.clear();
  }

  info(): DatasetInfo {
    return {
      generatedAt: this.generatedAt,
      sources: this.sources,
      cves: this.entries.size,
      rejected: this.rejected.size,
      debianPackages: this.debian.changelogs.map((c) => `${c.package} ${c.packageVersion}`),
    };
  }

  toFile(): DatasetFile {
    const cves = [...this.entries.values()].map((e) => e.record).sort((a, b) => compareIds(a.id, b.id));
    return {
      format: DATASET_FORMAT,
      formatVersion: DATASET_FORMAT_VERSION,
      generatedAt: this.generatedAt,
      sources: this.sources,
      rejected: [...this.rejected].sort(compareIds),
      cves,
      debian: this.debian.changelogs as DebianChangelog[],
    };
  }
}

function compareEntries(a: CveEntry, b: CveEntry): number {
  const sa = a.record.cvss3?.score;
  const sb = b.record.cvss3?.score;
  return (
    SEVERITY_ORDER.indexOf(severityBucket(sa)) - SEVERITY_ORDER.indexOf(severityBucket(sb)) ||
    (sb ?? -1) - (sa ?? -1) ||
    compareIds(b.record.id, a.record.id)
  );
}

/** CVE-2024-9999 sorts before CVE-2024-10000. */
export function compareIds(a: string, b: string): number {
  const [, ya = '', na = ''] = a.split('-');
  const [, yb = '', nb = ''] = b.split('-');
  return Number(ya) - Number(yb) || Number(na) - Number(nb) || (a < b ? -1 : a > b ? 1 : 0);
}

const fileValidator = validator(DatasetFileSchema, 'CVE dataset');

/** Parses dataset bytes (gzip or plain JSON) and validates them. */
export function parseDataset(bytes: Buffer, where: string): CveDatabase {
  let text: string;
  try {
    text = (isGzip(bytes) ? gunzipSync(bytes, { maxOutputLength: MAX_DATASET_BYTES }) : bytes).toString('utf8');
  } catch (cause) {
    throw new LivegraftError('DATASET_UNREADABLE', `${where}: not a readable gzip file`, { cause });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (cause) {
    throw new LivegraftError('DATASET_UNREADABLE', `${where}: not JSON (${(cause as Error).message})`, { cause });
  }
  try {
    return new CveDatabase(fileValidator.parse(json));
  } catch (err) {
    if (err instanceof ValidationError) {
      throw new LivegraftError('DATASET_INVALID', `${where}: ${err.message}`, { cause: err, details: err.details });
    }
    throw err;
  }
}

function isGzip(b: Buffer): boolean {
  return b.length >= 2 && b[0] === 0x1f && b[1] === 0x8b;
}

export async function loadDataset(path: string): Promise<CveDatabase> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (cause) {
    throw new LivegraftError('DATASET_UNREADABLE', `cannot read CVE dataset ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (bytes.length > MAX_DATASET_BYTES) {
    throw new LivegraftError('DATASET_UNREADABLE', `${path} is larger than ${MAX_DATASET_BYTES} bytes`);
  }
  return parseDataset(bytes, path);
}

export function loadDefaultDataset(): Promise<CveDatabase> {
  return loadDataset(DEFAULT_DATASET_PATH);
}

/** Serialises a dataset; gzip when the path ends in .gz. */
export function serializeDataset(db: CveDatabase, path: string): Buffer {
  const json = Buffer.from(JSON.stringify(db.toFile()), 'utf8');
  return path.endsWith('.gz') ? gzipSync(json, { level: 9 }) : json;
}

/** Writes the dataset atomically: temp file in the same directory, fsync, rename, fsync the directory. */
export async function saveDataset(db: CveDatabase, path: string): Promise<void> {
  const bytes = serializeDataset(db, path);
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${Date.now()}-${process.pid}-${Math.random().toString(36).slice(2)}.tmp`);
  try {
    const fh = await open(tmp, 'wx', 0o644);
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(tmp, path);
  } catch (cause) {
    await rm(tmp, { force: true });
    throw new LivegraftError('DATASET_WRITE_FAILED', `cannot write CVE dataset ${path}: ${(cause as Error).message}`, {
      cause,
    });
  }
  const dh = await open(dir, 'r');
  try {
    await dh.sync();
  } finally {
    await dh.close();
  }
}
