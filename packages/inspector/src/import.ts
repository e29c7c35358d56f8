import { LivegraftError, validator } from '@livegraft/protocol';
import { CnaRecordSchema, convertCna, type Converted } from './cna.ts';
import { toEntry, type CveDatabase } from './dataset.ts';
import { OsvRecordSchema, convertOsv } from './osv.ts';
import { CompactCveSchema, truncateTitle, type CompactCve } from './schemas.ts';

/** An import file is read whole; this bounds memory. */
export const MAX_IMPORT_BYTES = 128 * 1024 * 1024;
/** Skipped records are all counted, but only this many are listed. */
export const MAX_SKIPPED_LISTED = 1000;

export type ImportFormat = 'cna' | 'osv' | 'jsonl' | 'auto';
export const IMPORT_FORMATS: readonly ImportFormat[] = ['cna', 'osv', 'jsonl', 'auto'];

export interface SkippedRecord {
  /** `record 3` (1-based, in a JSON array or single document) or `line 7` (JSON Lines). */
  at: string;
  id?: string;
  reason: string;
}

export interface ImportResult {
  /** Records added or replacing an older version. */
  imported: number;
  /** Valid records not newer than what the dataset has. */
  unchanged: number;
  /** Ids now marked rejected (CNA state REJECTED, OSV withdrawn). */
  rejected: string[];
  skipped: SkippedRecord[];
  skippedTotal: number;
}

const cnaV = validator(CnaRecordSchema, 'CVE JSON 5 record');
const osvV = validator(OsvRecordSchema, 'OSV record');
const compactV = validator(CompactCveSchema, 'compact CVE record');

interface Doc {
  at: string;
  value: unknown;
}

/** Splits the text into documents: one JSON value, a JSON array, or JSON Lines. */
function documents(text: string, skip: (s: SkippedRecord) => void): Doc[] {
  const trimmed = text.trim();
  if (trimmed === '') throw new LivegraftError('CVE_IMPORT_EMPTY', 'the import file is empty');
  try {
    const whole: unknown = JSON.parse(trimmed);
    if (Array.isArray(whole)) return whole.map((value, i) => ({ at: `record ${i + 1}`, value }));
    return [{ at: 'record 1', value: whole }];
  } catch {
    // Not one JSON document: JSON Lines.
  }
  const docs: Doc[] = [];
  let failed = 0;
  let firstError = '';
  trimmed.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      docs.push({ at: `line ${i + 1}`, value: JSON.parse(line) });
    } catch (err) {
      failed++;
      firstError ||= `line ${i + 1}: ${(err as Error).message}`;
      skip({ at: `line ${i + 1}`, reason: `not JSON: ${(err as Error).message}` });
    }
  });
  if (docs.length === 0) {
    throw new LivegraftError(
      'CVE_IMPORT_UNPARSEABLE',
      `the import file is neither JSON nor JSON Lines (${failed} line(s), none parse; ${firstError})`,
    );
  }
  return docs;
}

function detect(value: unknown): Exclude<ImportFormat, 'auto'> | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as Record<string, unknown>;
  if ('cveMetadata' in o || o.dataType === 'CVE_RECORD') return 'cna';
  if ('ranges' in o && 'id' in o) return 'jsonl';
  if ('affected' in o && 'modified' in o) return 'osv';
  return undefined;
}

function convert(format: Exclude<ImportFormat, 'auto'>, value: unknown): Converted {
  const what = format === 'cna' ? cnaV : format === 'osv' ? osvV : compactV;
  const problems = what.problems(value);
  if (problems.length > 0) {
    const summary = problems
      .slice(0, 3)
      .map((p) => `${p.path === '' ? '(root)' : p.path}: ${p.message}`)
      .join('; ');
    return { ok: false, reason: `invalid ${format} record: ${summary}` };
  }
  if (format === 'cna') return convertCna(value as Parameters<typeof convertCna>[0]);
  if (format === 'osv') return convertOsv(value as Parameters<typeof convertOsv>[0]);
  const c = value as CompactCve;
  const record: CompactCve = {
    id: c.id,
    title: truncateTitle(c.title),
    published: c.published,
    modified: c.modified,
    ranges: c.ranges,
  };
  if (c.cvss3 !== undefined && c.cvss3 !== null) record.cvss3 = c.cvss3;
  return { ok: true, record };
}

function idOf(value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const o = value as { id?: unknown; cveMetadata?: { cveId?: unknown } };
  const id = o.cveMetadata?.cveId ?? o.id;
  return typeof id === 'string' ? id.slice(0, 100) : undefined;
}

function time(s: string | null | undefined): number {
  if (s === null || s === undefined) return -Infinity;
  const t = Date.parse(s);
  return Number.isNaN(t) ? -Infinity : t;
}

/**
 * Validates and merges records into the database in place. Bad records are reported and skipped;
 * a record replaces the existing one only if its `modified` is newer (or equal: a re-import of the
 * same revision is a no-op either way). Throws only if the text as a whole is unusable.
 */
export function importRecords(db: CveDatabase, text: string, format: ImportFormat = 'auto'): ImportResult {
  if (!IMPORT_FORMATS.includes(format)) {
    throw new LivegraftError('CVE_IMPORT_FORMAT', `unknown import format "${String(format)}" (use cna, osv or jsonl)`);
  }
  if (text.length > MAX_IMPORT_BYTES) {
    throw new LivegraftError('CVE_IMPORT_TOO_LARGE', `the import file is larger than ${MAX_IMPORT_BYTES} bytes`);
  }
  const result: ImportResult = { imported: 0, unchanged: 0, rejected: [], skipped: [], skippedTotal: 0 };
  const skip = (s: SkippedRecord): void => {
    result.skippedTotal++;
    if (result.skipped.length < MAX_SKIPPED_LISTED) result.skipped.push(s);
  };
  const docs = documents(text, skip);
  let changed = false;
  const recognised = docs.filter((d) => detect(d.value) !== undefined).length;
  if (format === 'auto' && recognised === 0) {
    throw new LivegraftError(
      'CVE_IMPORT_UNRECOGNISED',
      `none of the ${docs.length} document(s) is a CVE JSON 5 record, an OSV record or a compact CVE record`,
    );
  }
  for (const { at, value } of docs) {
    const id = idOf(value);
    const fmt = format === 'auto' ? detect(value) : format;
    if (fmt === undefined) {
      skip({ at, ...(id === undefined ? {} : { id }), reason: 'not a CVE JSON 5, OSV or compact record' });
      continue;
    }
    const c = convert(fmt, value);
    if (c.ok === false) {
      skip({ at, ...(id === undefined ? {} : { id }), reason: c.reason });
      continue;
    }
    const m = mergeConverted(db, c);
    if (typeof m === 'object') skip({ at, ...(m.id === undefined ? {} : { id: m.id }), reason: m.reason });
    else if (m === 'rejected') result.rejected.push((c as { id: string }).id);
    else if (m === 'imported') result.imported++;
    else if (m === 'unchanged') result.unchanged++;
    if (m === 'imported' || m === 'rejected' || m === 'rejected-again') changed = true;
  }
  if (changed) db.invalidate();
  return result;
}

/**
 * Merges one converted record into the database (the caller invalidates it afterwards): a
 * rejection marks the id rejected and removes it; a record replaces the existing one only if its
 * `modified` is newer. Returns what happened, or why the record was skipped.
 */
export function mergeConverted(
  db: CveDatabase,
  c: Exclude<Converted, { ok: false }>,
): 'imported' | 'unchanged' | 'rejected' | 'rejected-again' | { id?: string; reason: string } {
  if (c.ok === 'rejected') {
    const known = db.rejected.has(c.id);
    db.rejected.add(c.id);
    db.entries.delete(c.id);
    return known ? 'rejected-again' : 'rejected';
  }
  const rec = c.record;
  if (db.rejected.has(rec.id)) return { id: rec.id, reason: 'the CNA rejected this CVE id' };
  let entry;
  try {
    entry = toEntry(rec);
  } catch (err) {
    return { id: rec.id, reason: (err as Error).message };
  }
  const old = db.entries.get(rec.id);
  if (old !== undefined && time(old.record.modified) >= time(rec.modified)) return 'unchanged';
  db.entries.set(rec.id, entry);
  return 'imported';
}
