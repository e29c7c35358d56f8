import type { BuildResult } from './build.ts';

/** The human-readable report printed after a successful build. */
export function formatSummary(result: BuildResult): string {
  const { manifest: m, kernel } = result;
  const lines = [
    `built ${m.name} (level ${m.level}, cumulative, replaces every older livepatch)`,
    `  kernel     ${kernel.release}  id ${kernel.id}`,
    `             ${kernel.procVersion}${kernel.source === 'file' ? '  (from --proc-version)' : ''}`,
    `  vermagic   ${m.kernel.vermagic}`,
    `  headers    ${result.headersDir}`,
    `  fixes      ${m.fixes.length}`,
    ...m.fixes.map(
      (f) =>
        `    ${f.id}  ${f.title}${f.cves.length > 0 ? ` [${f.cves.join(', ')}]` : ''}\n` +
        (f.commits ?? [])
          .map((c) => `      upstream ${c.id === undefined ? '' : `${c.id.slice(0, 12)} `}${c.subject}\n`)
          .join('') +
        `      replaces ${f.functions.map((fn) => `${fn.object}:${fn.name}${fn.sympos ? `,${fn.sympos}` : ''}`).join(', ')}`,
    ),
    ...(m.skipped ?? []).map((s) => `    ${s.id}  skipped: ${s.reason}`),
    `  cves       ${m.cves.length > 0 ? m.cves.join(', ') : '(none)'}`,
    `  module     ${result.modulePath} (${m.module.size} bytes, sha256 ${m.module.sha256})`,
    `  manifest   ${result.manifestPath}`,
  ];
  if (result.reproducibility) {
    const r = result.reproducibility;
    lines.push(
      `  reproduced ${r.matched}/${r.compared} unpatched functions match the shipped kernel` +
        (r.mismatches.length > 0 ? ` (${r.mismatches.length} differ, built with --force)` : ''),
    );
  }
  if (result.klpRelocations > 0) lines.push(`  klp relocs ${result.klpRelocations}`);
  if (result.warnings.length > 0) {
    lines.push(`  warnings   ${result.warnings.length}`, ...result.warnings.map((w) => `    ${w}`));
  }
  return `${lines.join('\n')}\n`;
}
