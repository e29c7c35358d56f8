import type { CveFinding, InspectionResult } from './affected.ts';
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
    `Dataset: ${r.dataset.cves} CVEs${src === undefined ? '' : `, kernel CNA data of ${src.commitDate} (${src.commit.slice(0, 12)})`}`,
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
