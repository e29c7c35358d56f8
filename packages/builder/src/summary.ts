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
        `      replaces ${f.functions.map((fn) => `${fn.object}:${fn.name}`).join(', ')}`,
    ),
    `  cves       ${m.cves.length > 0 ? m.cves.join(', ') : '(none)'}`,
    `  module     ${result.modulePath} (${m.module.size} bytes, sha256 ${m.module.sha256})`,
    `  manifest   ${result.manifestPath}`,
  ];
  if (result.warnings.length > 0) {
    lines.push(`  warnings   ${result.warnings.length}`, ...result.warnings.map((w) => `    ${w}`));
  }
  return `${lines.join('\n')}\n`;
}
