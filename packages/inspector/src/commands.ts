import { readFile as fsReadFile, stat } from 'node:fs/promises';
import { levelFixesOf, liveFixedCves, LivegraftError, type PatchManifest } from '@livegraft/protocol';
import { affected, type InspectionResult } from './affected.ts';
import { exposure } from './exposure.ts';
import { loadDataset, loadDefaultDataset, saveDataset, type CveDatabase } from './dataset.ts';
import { IMPORT_FORMATS, importRecords, MAX_IMPORT_BYTES, type ImportFormat, type ImportResult } from './import.ts';
import { renderExposure, renderInspection, renderInspectionJson, type AppliedLevelView } from './render.ts';

/**
 * Pure pieces of `livegraft inspect` and `livegraft cve import`; the CLI parses arguments,
 * prints `output` and maps thrown LivegraftErrors to exit codes.
 */

/** The dataset at `path` if given and present, else the shipped default. */
export async function openDataset(path?: string): Promise<CveDatabase> {
  if (path === undefined) return loadDefaultDataset();
  const exists = await stat(path).then(
    () => true,
    () => false,
  );
  return exists ? loadDataset(path) : loadDefaultDataset();
}

/**
 * `livegraft inspect --kernel "<string>" [--applied <manifest>] [--json]`:
 * with the manifest of the level the host runs, the CVEs that level carries
 * count as fixed live and the rest stay open.
 */
export function inspectCommand(
  db: CveDatabase,
  opts: { kernel: string; json?: boolean; applied?: PatchManifest },
): { output: string; result: InspectionResult } {
  if (opts.applied === undefined) {
    const result = affected(db, opts.kernel);
    return { output: opts.json === true ? renderInspectionJson(result) : renderInspection(result), result };
  }
  const m = opts.applied;
  const x = exposure(db, opts.kernel, liveFixedCves(m));
  const level: AppliedLevelView = { level: m.level, name: m.name, ...levelFixesOf(m) };
  if (opts.json !== true) return { output: renderExposure(x, level), result: x.inspection };
  const json = {
    ...x.inspection,
    applied: { level: m.level, name: m.name, fixes: level.fixes, skipped: level.skipped },
    fixedLive: x.mitigated,
    notApplicable: x.notApplicable,
    open: x.effective,
    openCounts: x.counts,
  };
  return { output: `${JSON.stringify(json, null, 2)}\n`, result: x.inspection };
}

export interface CveImportOptions {
  file: string;
  format?: ImportFormat;
  /** Dataset to refresh: read if it exists (else the shipped default is the base), then rewritten atomically. */
  dataset: string;
}

/** `livegraft cve import <file> [--format cna|osv|jsonl] --dataset <path>` */
export async function cveImportCommand(
  opts: CveImportOptions,
  deps: { readFile?: (path: string) => Promise<Buffer> } = {},
): Promise<{ output: string; result: ImportResult }> {
  const format = opts.format ?? 'auto';
  if (!IMPORT_FORMATS.includes(format)) {
    throw new LivegraftError('CVE_IMPORT_FORMAT', `unknown import format "${format}" (use cna, osv or jsonl)`);
  }
  const read = deps.readFile ?? ((p: string) => fsReadFile(p));
  let bytes: Buffer;
  try {
    bytes = await read(opts.file);
  } catch (cause) {
    throw new LivegraftError('CVE_IMPORT_UNREADABLE', `cannot read ${opts.file}: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (bytes.length > MAX_IMPORT_BYTES) {
    throw new LivegraftError('CVE_IMPORT_TOO_LARGE', `${opts.file} is larger than ${MAX_IMPORT_BYTES} bytes`);
  }
  const db = await openDataset(opts.dataset);
  const result = importRecords(db, bytes.toString('utf8'), format);
  if (result.imported > 0 || result.rejected.length > 0) await saveDataset(db, opts.dataset);
  const lines = [
    `${opts.file}: ${result.imported} imported, ${result.unchanged} unchanged, ${result.rejected.length} newly rejected, ` +
      `${result.skippedTotal} skipped; dataset ${opts.dataset} now has ${db.entries.size} CVEs`,
    ...result.skipped.map((s) => `  skipped ${s.at}${s.id === undefined ? '' : ` (${s.id})`}: ${s.reason}`),
  ];
  if (result.skippedTotal > result.skipped.length)
    lines.push(`  ... ${result.skippedTotal - result.skipped.length} more`);
  return { output: `${lines.join('\n')}\n`, result };
}
