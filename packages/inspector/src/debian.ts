import type { DebianChangelog } from './schemas.ts';

/**
 * Debian version ordering (deb-version(7)): epoch, then upstream and revision compared with
 * dpkg's algorithm, where `~` sorts before everything, even the end of the string.
 */
export function compareDebianVersions(a: string, b: string): number {
  const pa = splitDebian(a);
  const pb = splitDebian(b);
  return pa.epoch - pb.epoch || compareFragment(pa.upstream, pb.upstream) || compareFragment(pa.revision, pb.revision);
}

function splitDebian(v: string): { epoch: number; upstream: string; revision: string } {
  let rest = v.trim();
  let epoch = 0;
  const colon = rest.indexOf(':');
  if (colon > 0 && /^\d+$/.test(rest.slice(0, colon))) {
    epoch = Number(rest.slice(0, colon));
    rest = rest.slice(colon + 1);
  }
  const dash = rest.lastIndexOf('-');
  return dash < 0
    ? { epoch, upstream: rest, revision: '' }
    : { epoch, upstream: rest.slice(0, dash), revision: rest.slice(dash + 1) };
}

function order(c: string | undefined): number {
  if (c === undefined) return 0;
  if (c === '~') return -1;
  if (/[A-Za-z]/.test(c)) return c.charCodeAt(0);
  return c.charCodeAt(0) + 256;
}

function compareFragment(a: string, b: string): number {
  let i = 0;
  let j = 0;
  while (i < a.length || j < b.length) {
    // Non-digit prefix, character by character.
    while ((i < a.length && !isDigit(a[i])) || (j < b.length && !isDigit(b[j]))) {
      const ca = i < a.length && !isDigit(a[i]) ? a[i] : undefined;
      const cb = j < b.length && !isDigit(b[j]) ? b[j] : undefined;
      const d = order(ca) - order(cb);
      if (d !== 0) return d;
      if (ca !== undefined) i++;
      if (cb !== undefined) j++;
    }
    let na = '';
    let nb = '';
    while (i < a.length && isDigit(a[i])) na += a[i++];
    while (j < b.length && isDigit(b[j])) nb += b[j++];
    const d = Number(na || '0') - Number(nb || '0');
    if (d !== 0) return d;
  }
  return 0;
}

function isDigit(c: string | undefined): boolean {
  return c !== undefined && c >= '0' && c <= '9';
}

/** The upstream kernel version inside a Debian package version: 6.1.192-2 -> 6.1.192, 6.12.117-1~deb12u1 -> 6.12.117. */
export function upstreamOfDebianVersion(v: string): string {
  const { upstream } = splitDebian(v);
  return upstream.split(/[~+]/)[0] ?? upstream;
}

/**
 * Backport and rebuild uploads (`6.12.117-1~deb12u1`, `6.12.95-1~bpo12+1`) carry no CVE list of
 * their own: they contain the upload they rebuild, so they are compared as that version.
 */
function rebuiltVersion(v: string): string {
  const { epoch, upstream, revision } = splitDebian(v);
  const base = revision.split('~')[0] ?? revision;
  return `${epoch > 0 ? `${epoch}:` : ''}${upstream}${base === '' ? '' : `-${base}`}`;
}

export interface DebianFixes {
  package: string;
  packageVersion: string;
  cves: ReadonlySet<string>;
}

/** Debian package version -> CVEs its changelog names as fixed (cumulative), for the shipped changelogs. */
export class DebianMapping {
  readonly changelogs: readonly DebianChangelog[];
  private readonly cache = new Map<string, DebianFixes | null>();

  constructor(changelogs: readonly DebianChangelog[]) {
    this.changelogs = changelogs;
  }

  /** Only exact package versions present in a changelog are known; anything else is undefined. */
  fixesFor(packageVersion: string): DebianFixes | undefined {
    const hit = this.cache.get(packageVersion);
    if (hit !== undefined) return hit ?? undefined;
    let found: DebianFixes | null = null;
    for (const log of this.changelogs) {
      if (!log.entries.some((e) => e.version === packageVersion)) continue;
      const limit = rebuiltVersion(packageVersion);
      const cves = new Set<string>();
      for (const e of log.entries) {
        if (compareDebianVersions(e.version, limit) <= 0) for (const c of e.cves) cves.add(c);
      }
      found = { package: log.package, packageVersion, cves };
      break;
    }
    this.cache.set(packageVersion, found);
    return found ?? undefined;
  }

  /** Package versions built with an ABI name such as `6.1.0-56`, oldest first. */
  versionsForAbi(abi: string): string[] {
    for (const log of this.changelogs) {
      const v = log.abi[abi];
      if (v !== undefined && v.length > 0) return v;
    }
    return [];
  }
}
