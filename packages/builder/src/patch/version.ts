/** Compares dotted numeric versions (6.1.176 < 6.1.187); missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/**
 * Why a kernel build at `upstream` (e.g. 6.1.187) needs no live patch for a
 * fix that entered its stable branch at fixedIn[branch], or undefined.
 */
export function alreadyFixedReason(
  fixedIn: Readonly<Record<string, string>> | undefined,
  upstream: string,
): string | undefined {
  const branch = upstream.split('.').slice(0, 2).join('.');
  const fixed = fixedIn?.[branch];
  if (fixed === undefined) return undefined;
  return compareVersions(upstream, fixed) >= 0
    ? `already fixed in ${upstream} (the fix entered ${branch} in ${fixed})`
    : undefined;
}
