import { fixOrigin, type LevelFixes } from '@livegraft/protocol';
import { countBySeverity, type CveFinding, type InspectionResult } from './affected.ts';
import type { ExposureResult } from './exposure.ts';
import { SEVERITY_ORDER } from './severity.ts';

/** Long lists are cut in text output; --json always carries everything. */
export const MAX_TEXT_PER_SEVERITY = 200;

function line(f: CveFinding): string {
  const score = f.cvssScore === null ? '   -' : f.cvssScore.toFixed(1).padStart(4);
  const fix =
    f.fixedIn === null
      ? 'no fix yet'
      : f.fixedIn.kind === 'stable'
        ? `fixed in ${f.fixedIn.version}`
        : `fixed in mainline ${f.fixedIn.version}`;
  return `  ${f.id.padEnd(16)} ${score}  ${fix.padEnd(24)} ${f.title}`;
}

/** Human-readable report: header, warnings, then CVEs grouped by severity with their fix version. */
export function renderInspection(r: InspectionResult, opts: { maxPerSeverity?: number } = {}): string {
  const max = opts.maxPerSeverity ?? MAX_TEXT_PER_SEVERITY;
  const out: string[] = [];
  const k = r.kernel;
  const deb = k.debianPackageVersion === null ? '' : ` (Debian ${k.debianPackageVersion})`;
  out.push(`Kernel ${k.release}: evaluated as upstream ${k.upstream}${deb}, branch ${k.branch}`);
  const src = r.dataset.sources[0];
  out.push(
    `Dataset: ${r.dataset.cves} CVEs${src === undefined ? '' : `, kernel CNA data of ${src.commitDate}${src.commit === '' ? '' : ` (${src.commit.slice(0, 12)})`}`}`,
  );
  for (const w of r.warnings) out.push(`warning: ${w.message}`);
  const c = r.counts;
  out.push(
    `${c.total} CVEs affect this kernel: ` +
      SEVERITY_ORDER.filter((s) => c[s] > 0)
        .map((s) => `${c[s]} ${s}`)
        .join(', ') +
      (r.fixedByDistro.length > 0
        ? `; ${r.fixedByDistro.length} more are fixed by the distribution's own patches`
        : ''),
  );
  for (const s of SEVERITY_ORDER) {
    const group = r.affected.filter((f) => f.severity === s);
    if (group.length === 0) continue;
    out.push('', `${s.toUpperCase()} (${group.length})`);
    for (const f of group.slice(0, max)) out.push(line(f));
    if (group.length > max) out.push(`  ... ${group.length - max} more (use --json for all)`);
  }
  return `${out.join('\n')}\n`;
}

/** Stable JSON for `--json`. */
export function renderInspectionJson(r: InspectionResult): string {
  return `${JSON.stringify(r, null, 2)}\n`;
}

/** The live patch level a host runs, as `inspect --applied` reports it. */
export interface AppliedLevelView extends LevelFixes {
  level: number;
  name: string;
}

/**
 * The report for a host running a live patch: the CVEs its level fixes live
 * (each with the fix and upstream commit that closes it), then the CVEs still
 * open, grouped by severity as in `renderInspection`.
 */
export function renderExposure(
  x: ExposureResult,
  applied: AppliedLevelView,
  opts: { maxPerSeverity?: number } = {},
): string {
  const all = new Map(x.inspection.affected.map((f) => [f.id, f]));
  const lines = [
    `Live patch level ${applied.level} (${applied.name}) fixes ${x.mitigated.length} of the ${x.inspection.counts.total} CVEs affecting this kernel live:`,
  ];
  for (const id of x.mitigated) {
    const f = all.get(id);
    const score = f?.cvssScore === null || f?.cvssScore === undefined ? '   -' : f.cvssScore.toFixed(1).padStart(4);
    const by = applied.fixes.filter((fix) => fix.cves.includes(id));
    const how = by.map((fix) => `${fix.id}, ${fixOrigin(fix)}`).join('; ') || 'named by the level';
    lines.push(`  ${id.padEnd(16)} ${score}  fixed live by ${how}`);
  }
  if (x.notApplicable.length > 0) {
    lines.push(
      `The level also names ${x.notApplicable.join(', ')}: not affecting this kernel, or unknown to the dataset.`,
    );
  }
  for (const s of applied.skipped) {
    lines.push(`Not in the level: ${s.id}${s.cves.length > 0 ? ` [${s.cves.join(', ')}]` : ''}: ${s.reason}`);
  }
  const open: InspectionResult = { ...x.inspection, affected: x.effective, counts: countBySeverity(x.effective) };
  const report = renderInspection(open, opts).split('\n');
  // The header (kernel, dataset, warnings) first, then the live fixes, then what is still open.
  const head = report.findIndex((l) => / CVEs affect this kernel: /.test(l));
  const tail = report
    .slice(head)
    .join('\n')
    .replace(/ CVEs affect this kernel: /, ' CVEs remain open: ');
  return `${[...report.slice(0, head), ...lines, tail].join('\n')}`;
}
