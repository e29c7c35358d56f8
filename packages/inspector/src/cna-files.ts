import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { LivegraftError, validator } from '@livegraft/protocol';
import { CnaRecordSchema, convertCna, type CnaRecord, type Converted } from './cna.ts';
import { tryParseVersion } from './version.ts';

/** The kernel CNA has ~15,000 published and ~300 rejected records; a tree far beyond that is not theirs. */
export const MAX_CNA_FILES = 200_000;
/** One CVE JSON 5 record is a few KB; a file holding an array of them is bounded like an import. */
export const MAX_CNA_FILE_BYTES = 128 * 1024 * 1024;

const cnaV = validator(CnaRecordSchema, 'CVE JSON 5 record');

/** A CNA record that validated and converted; `no semver ranges` ones come back as `unusable`. */
export interface CnaRead {
  records: { file: string; converted: Exclude<Converted, { ok: false }>; dateUpdated: string | null }[];
  /** Valid records that cannot be evaluated (git commit ranges only), with the reason. */
  unusable: { file: string; id: string; reason: string }[];
  files: number;
}

/** `/containers/cna/affected/0/versions/2/lessThan` -> `containers.cna.affected[0].versions[2].lessThan`. */
export function fieldPath(pointer: string): string {
  if (pointer === '') return '(the record itself)';
  return pointer
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc === '' ? p : `${acc}.${p}`), '');
}

function invalid(file: string, field: string, why: string): LivegraftError {
  return new LivegraftError('CVE_RECORD_INVALID', `${file}: field ${field}: ${why}`, { details: { file, field } });
}

/** The first version field the converter cannot read, named by its path. */
function badVersionField(r: CnaRecord): { field: string; value: string } | undefined {
  const affected = r.containers.cna.affected ?? [];
  for (const [i, a] of affected.entries()) {
    for (const [j, v] of (a.versions ?? []).entries()) {
      if (v.versionType === 'git' || v.status === 'unknown') continue;
      const at = `containers.cna.affected[${i}].versions[${j}]`;
      const wild = (s: string): boolean => s === '*' || /^\d+\.\d+(\.\d+)?\.\*$/.test(s);
      if (v.version !== '0' && tryParseVersion(v.version) === undefined && !wild(v.version)) {
        return { field: `${at}.version`, value: v.version };
      }
      if (v.lessThan !== undefined && tryParseVersion(v.lessThan) === undefined && !wild(v.lessThan)) {
        return { field: `${at}.lessThan`, value: v.lessThan };
      }
    }
  }
  return undefined;
}

/** Validates one record strictly: anything malformed throws CVE_RECORD_INVALID naming the file and the field. */
export function readCnaRecord(value: unknown, file: string): Converted {
  const problems = cnaV.problems(value);
  const first = problems[0];
  if (first !== undefined) {
    const more = problems.length > 1 ? ` (and ${problems.length - 1} more problem(s))` : '';
    // A missing property is reported on its parent: name the property itself.
    const missing = /must have required propert(?:y|ies) '?([\w-]+)/.exec(first.message)?.[1];
    const field = missing === undefined ? fieldPath(first.path) : fieldPath(`${first.path}/${missing}`);
    throw invalid(file, field, `${missing === undefined ? first.message : 'missing'}${more}`);
  }
  const r = value as CnaRecord;
  const c = convertCna(r);
  if (c.ok === false && c.reason.startsWith('unparseable')) {
    const bad = badVersionField(r);
    throw invalid(
      file,
      bad?.field ?? 'containers.cna.affected',
      `"${bad?.value ?? '?'}" is not a kernel version (like 6.1.124, 6.13, 6.1.* or *)`,
    );
  }
  // Git commit ranges alone are valid but cannot be evaluated; anything else is a bad record.
  if (c.ok === false && !c.reason.startsWith('no affected kernel versions')) {
    const m = (r.containers.cna.metrics ?? []).findIndex((x) => x.cvssV3_1 !== undefined || x.cvssV3_0 !== undefined);
    const metric = r.containers.cna.metrics?.[m];
    const field =
      m < 0
        ? 'containers.cna'
        : `containers.cna.metrics[${m}].${metric?.cvssV3_1 ? 'cvssV3_1' : 'cvssV3_0'}.vectorString`;
    throw invalid(file, field, c.reason);
  }
  return c;
}

async function listJson(dir: string, out: string[]): Promise<void> {
  const entries = await readdir(dir, { withFileTypes: true });
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) await listJson(p, out);
    else if (e.isFile() && (e.name.endsWith('.json') || e.name.endsWith('.jsonl'))) out.push(p);
    if (out.length > MAX_CNA_FILES) {
      throw new LivegraftError('CVE_IMPORT_TOO_LARGE', `${dir} holds more than ${MAX_CNA_FILES} JSON files`);
    }
  }
}

function documentsOf(text: string, file: string): { at: string; value: unknown }[] {
  if (file.endsWith('.jsonl')) {
    return text
      .split('\n')
      .map((line, i) => ({ line, i }))
      .filter(({ line }) => line.trim() !== '')
      .map(({ line, i }) => {
        try {
          return { at: `${file} line ${i + 1}`, value: JSON.parse(line) as unknown };
        } catch (err) {
          throw new LivegraftError(
            'CVE_RECORD_INVALID',
            `${file} line ${i + 1}: not JSON (${(err as Error).message})`,
            {
              details: { file },
            },
          );
        }
      });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new LivegraftError('CVE_RECORD_INVALID', `${file}: not JSON (${(err as Error).message})`, {
      details: { file },
    });
  }
  return Array.isArray(value)
    ? value.map((v, i) => ({ at: `${file} record ${i + 1}`, value: v as unknown }))
    : [{ at: file, value }];
}

/**
 * Reads kernel CNA records (CVE JSON 5) from files and directories: a directory is searched for
 * `*.json` / `*.jsonl` files (the vulns repository's cve/published and cve/rejected trees, or a
 * download of them). Every record must validate; the first malformed one stops the read with
 * CVE_RECORD_INVALID naming its file and field, so nothing of a broken set is merged.
 */
export async function readCnaSources(paths: readonly string[]): Promise<CnaRead> {
  const files: string[] = [];
  for (const p of paths) {
    let s;
    try {
      s = await stat(p);
    } catch (cause) {
      throw new LivegraftError('CVE_IMPORT_UNREADABLE', `cannot read ${p}: ${(cause as Error).message}`, { cause });
    }
    if (s.isDirectory()) await listJson(p, files);
    else files.push(p);
  }
  if (files.length === 0) {
    throw new LivegraftError('CVE_IMPORT_EMPTY', `no .json or .jsonl file in ${paths.join(', ')}`);
  }
  const out: CnaRead = { records: [], unusable: [], files: files.length };
  for (const file of files) {
    const s = await stat(file);
    if (s.size > MAX_CNA_FILE_BYTES) {
      throw new LivegraftError('CVE_IMPORT_TOO_LARGE', `${file} is larger than ${MAX_CNA_FILE_BYTES} bytes`);
    }
    const text = await readFile(file, 'utf8');
    if (text.trim() === '') throw new LivegraftError('CVE_RECORD_INVALID', `${file}: the file is empty`);
    for (const { at, value } of documentsOf(text, file)) {
      const c = readCnaRecord(value, at);
      if (c.ok === false) {
        out.unusable.push({ file: at, id: (value as CnaRecord).cveMetadata.cveId, reason: c.reason });
        continue;
      }
      const r = value as CnaRecord;
      const dateUpdated = r.cveMetadata.dateUpdated ?? r.containers.cna.providerMetadata?.dateUpdated ?? null;
      out.records.push({ file: at, converted: c, dateUpdated });
    }
  }
  return out;
}
