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
  status_notes?: string;
  action_statement?: string;
}

export interface VexDocument {
  '@context': typeof OPENVEX_CONTEXT;
  '@id': string;
  author: string;
  role: string;
  timestamp: string;
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
  const qualifiers = `kernel_id=${e.kernelId}&host=${encodeURIComponent(e.hostname)}&host_id=${encodeURIComponent(e.hostId)}`;
  const purl = `pkg:generic/linux@${encodeURIComponent(e.release)}?${qualifiers}`;
  const product: VexProduct = { '@id': purl, identifiers: { purl } };
  if (h.debianPackageVersion !== null) {
    const arch = DEBIAN_ARCH[h.machine] ?? h.machine;
    const deb = `pkg:deb/debian/linux-image-${encodeURIComponent(e.release)}@${encodeURIComponent(h.debianPackageVersion)}?arch=${encodeURIComponent(arch)}`;
    product.subcomponents = [{ '@id': deb, identifiers: { purl: deb } }];
  }
  return product;
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
      // Every CVE the applied live patch names is fixed on this host, including ones the CVE
      // dataset does not know (newer than its snapshot, or a vendor-specific id).
      for (const cve of new Set([...h.exposure.mitigated, ...h.exposure.notApplicable])) {
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
  return [...grouped.values()].sort(
    (a, b) => a.status.localeCompare(b.status) || a.vulnerability.name.localeCompare(b.vulnerability.name),
  );
}

export function vexDocument(
  statements: VexStatement[],
  opts: { id: string; author: string; now: Date; tooling: string },
): VexDocument {
  return {
    '@context': OPENVEX_CONTEXT,
    '@id': opts.id,
    author: opts.author,
    role: 'Live patch provider (running-kernel status)',
    timestamp: opts.now.toISOString(),
    version: 1,
    tooling: opts.tooling,
    statements,
  };
}
