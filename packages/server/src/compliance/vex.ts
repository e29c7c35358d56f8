import { PackageURL } from 'packageurl-js';
import { commitsText, type HostExposure, type LevelFix } from '@livegraft/protocol';
import type { LevelInfo } from './levels.ts';

export const OPENVEX_CONTEXT = 'https://openvex.dev/ns/v0.2.0';

export interface VexProduct {
  '@id': string;
  identifiers?: { purl?: string };
  subcomponents?: { '@id': string; identifiers?: { purl?: string } }[];
}

export interface VexStatement {
  vulnerability: { name: string };
  products: VexProduct[];
  status: 'not_affected' | 'affected' | 'fixed' | 'under_investigation';
  /** Only with not_affected. */
  justification?: 'vulnerable_code_not_present';
  status_notes?: string;
  action_statement?: string;
}

export interface VexDocument {
  '@context': typeof OPENVEX_CONTEXT;
  '@id': string;
  author: string;
  role: string;
  timestamp: string;
  last_updated: string;
  version: number;
  tooling: string;
  statements: VexStatement[];
}

/** One host's facts the VEX statements are made from. */
export interface VexHostInput {
  exposure: HostExposure;
  machine: string;
  /** Debian package version of the running kernel (6.1.192-2), when the /proc/version line names it. */
  debianPackageVersion: string | null;
  /** Whether the CVE dataset has a record of this CVE (one it knows and that does not affect the kernel is not_affected). */
  known: (cve: string) => boolean;
  /** The applied level's manifest facts (undefined at level 0 or for a level the server never stored). */
  applied: LevelInfo | undefined;
  /** Published levels of the host's kernel, lowest first. */
  published: readonly LevelInfo[];
}

const DEBIAN_ARCH: Readonly<Record<string, string>> = { x86_64: 'amd64', aarch64: 'arm64', i686: 'i386' };

/**
 * The product a statement is about: the kernel running on one host. The
 * generic purl names the host; the Debian package purl (as a subcomponent) is
 * what image and host scanners find installed, so they can match it.
 */
export function hostProduct(h: VexHostInput): VexProduct {
  const e = h.exposure;
  // packageurl-js encodes each part and puts the qualifiers in canonical (sorted) order.
  const purl = new PackageURL('generic', undefined, 'linux', e.release, {
    kernel_id: e.kernelId,
    host: e.hostname,
    host_id: e.hostId,
  }).toString();
  const product: VexProduct = { '@id': purl, identifiers: { purl } };
  if (h.debianPackageVersion !== null) {
    const arch = DEBIAN_ARCH[h.machine] ?? h.machine;
    const deb = new PackageURL('deb', 'debian', `linux-image-${e.release}`, h.debianPackageVersion, {
      arch,
    }).toString();
    product.subcomponents = [{ '@id': deb, identifiers: { purl: deb } }];
  }
  return product;
}

/**
 * The Debian package version named by a /proc/version line (`... Debian
 * 6.1.192-3 (2026-11-20)`), whether or not the CVE data knows it. The last
 * match is the kernel's (the compiler's `(Debian 12.2.0-14)` comes earlier),
 * and it must be of the running release's x.y branch.
 */
export function debianPackageOf(procVersion: string, release: string): string | null {
  const found = [...procVersion.matchAll(/\bDebian ((?:\d+:)?(\d+)\.(\d+)(?:\.\d+)?[-+~.\w]*-[\w.+~]+)/g)].at(-1);
  const branch = /^(\d+)\.(\d+)/.exec(release);
  if (found === undefined || branch === null) return null;
  return found[2] === branch[1] && found[3] === branch[2] ? (found[1] as string) : null;
}

/** The notes of a not_affected statement: the kernel is not affected, the live patch's fix is redundant there. */
function notAffectedImpact(cve: string, h: VexHostInput): string {
  const pkg = h.debianPackageVersion === null ? '' : ` (Debian ${h.debianPackageVersion})`;
  return (
    `The running kernel ${h.exposure.release}${pkg} does not contain the code ${cve} is about: ` +
    'the CVE data puts this version outside its affected ranges (fixed earlier, or the flaw came later).'
  );
}

/** What a fix is made of, for a statement's notes: its upstream commit(s), when it names them. */
function fixOrigin(f: LevelFix): string {
  const n = f.commits.length;
  if (n > 0) return ` Fix ${f.id} carries upstream commit${n > 1 ? 's' : ''} ${commitsText(f.commits)}.`;
  return f.kind === 'patch' ? ` Fix ${f.id} was built from upstream patches.` : '';
}

/**
 * The `status_notes` of a `fixed` statement (OpenVEX 0.2.0 puts how a status
 * was reached there; action and impact statements belong to `affected` and
 * `not_affected`): the level, module and fix, and the upstream commit it carries.
 */
function fixedNote(cve: string, applied: LevelInfo): string {
  const fixes = applied.fixesByCve.get(cve) ?? [];
  return (
    `Fixed in the running kernel by livegraft live patch level ${applied.level} ` +
    `(module ${applied.moduleName}${fixes.length > 0 ? `, fix ${fixes.map((f) => f.id).join(', ')}` : ''}).` +
    fixes.map(fixOrigin).join('') +
    ' The installed kernel package is unchanged; the fix is live until the next boot, when the agent re-applies it.'
  );
}

function actionFor(cve: string, h: VexHostInput, fixedIn: { version: string; kind: string } | null): string {
  const level = h.published.find((l) => l.level > h.exposure.appliedLevel && l.cves.includes(cve));
  const upgrade =
    fixedIn === null
      ? 'no fixed kernel version is known yet'
      : `upgrade the kernel to ${fixedIn.version} (${fixedIn.kind}) or later`;
  return level !== undefined
    ? `Apply livegraft live patch level ${level.level} (module ${level.moduleName}), which fixes ${cve}, or ${upgrade}.`
    : `No live patch fixes ${cve} for this kernel yet: ${upgrade}.`;
}

/** Statements for hosts: `fixed` for CVEs their applied live patch fixes, `affected` for the rest of their exposure. */
export function vexStatements(hosts: readonly VexHostInput[]): VexStatement[] {
  // Hosts in the same situation share one statement.
  const grouped = new Map<string, VexStatement>();
  const add = (key: string, make: () => VexStatement, product: VexProduct): void => {
    let s = grouped.get(key);
    if (s === undefined) {
      s = make();
      grouped.set(key, s);
    }
    s.products.push(product);
  };
  for (const h of hosts) {
    const product = hostProduct(h);
    const applied = h.applied;
    if (applied !== undefined) {
      // A CVE the applied live patch names is fixed on this host when it affects the kernel, and
      // when the CVE data does not know it (newer than its snapshot, or a vendor-specific id): the
      // fix is live either way. One the data knows and places before this kernel is not_affected.
      for (const cve of h.exposure.notApplicable.filter((c) => h.known(c))) {
        const impact = notAffectedImpact(cve, h);
        add(
          `not_affected\0${cve}\0${impact}`,
          () => ({
            vulnerability: { name: cve },
            products: [],
            status: 'not_affected',
            // OpenVEX takes a justification or an impact statement, not both: the why goes in the notes.
            justification: 'vulnerable_code_not_present',
            status_notes: `${impact} Live patch level ${applied.level} also carries a fix for it, which changes nothing here.`,
          }),
          product,
        );
      }
      const unknown = h.exposure.notApplicable.filter((c) => !h.known(c));
      for (const cve of new Set([...h.exposure.mitigated, ...unknown])) {
        const note = fixedNote(cve, applied);
        add(
          `fixed\0${cve}\0${note}`,
          () => ({ vulnerability: { name: cve }, products: [], status: 'fixed', status_notes: note }),
          product,
        );
      }
    }
    for (const f of h.exposure.effective) {
      const action = actionFor(f.id, h, f.fixedIn);
      add(
        `affected\0${f.id}\0${action}`,
        () => ({
          vulnerability: { name: f.id },
          products: [],
          status: 'affected',
          status_notes: `${f.severity}${f.cvssScore === null ? '' : ` (CVSS ${f.cvssScore})`}: ${f.title}`,
          action_statement: action,
        }),
        product,
      );
    }
  }
  // Same facts, same order: the document's version depends on its statements only.
  for (const s of grouped.values()) s.products.sort((a, b) => cmp(a['@id'], b['@id']));
  return [...grouped.values()].sort(
    (a, b) => cmp(a.status, b.status) || cmp(a.vulnerability.name, b.vulnerability.name),
  );
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function vexDocument(
  statements: VexStatement[],
  opts: { id: string; version: number; author: string; issuedAt: string; updatedAt: string; tooling: string },
): VexDocument {
  return {
    '@context': OPENVEX_CONTEXT,
    '@id': opts.id,
    author: opts.author,
    role: 'Live patch provider (running-kernel status)',
    timestamp: opts.issuedAt,
    last_updated: opts.updatedAt,
    version: opts.version,
    tooling: opts.tooling,
    statements,
  };
}
