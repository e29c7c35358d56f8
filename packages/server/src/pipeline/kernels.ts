import type { Kysely } from 'kysely';
import type { FleetKernel, KernelIdentity } from '@livegraft/protocol';
import type { PipelineDatabase } from './schema.ts';

/** What /proc/version says about the build: the distribution package and the upstream version under it. */
export interface KernelVersions {
  upstreamVersion: string | null;
  packageVersion: string | null;
}

/**
 * Debian's /proc/version ends "... Debian 6.1.176-1 (2026-…)": package
 * 6.1.176-1 on upstream 6.1.176. A release with no distribution ABI number
 * (6.6.30, 6.6.30-custom) is its own upstream version; Debian's 6.1.0-50-amd64
 * is not, so without the package line the upstream version is unknown.
 */
export function kernelVersions(procVersion: string, release: string): KernelVersions {
  const line = procVersion.split('\n')[0] ?? '';
  // The last "Debian X" on the line is the kernel package; an earlier one is the compiler's.
  const deb = [...line.matchAll(/\bDebian ((\d+\.\d+(?:\.\d+)?)-[0-9A-Za-z.+~]+)/g)].at(-1);
  if (deb?.[1] !== undefined && deb[2] !== undefined) return { upstreamVersion: deb[2], packageVersion: deb[1] };
  const plain = /^(\d+\.\d+\.\d+)(?:[-+]([A-Za-z][\w.+-]*))?$/.exec(release);
  if (plain?.[1] !== undefined && !/^\d+\.\d+\.0-\d+/.test(release)) {
    return { upstreamVersion: plain[1], packageVersion: null };
  }
  return { upstreamVersion: null, packageVersion: null };
}

/** Compares dotted numeric versions (6.1.9 < 6.1.10); a missing part counts as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d < 0 ? -1 : 1;
  }
  return 0;
}

/** The stable branch of a version: 6.1.176 -> 6.1. */
export function branchOf(version: string): string {
  return version.split('.').slice(0, 2).join('.');
}

/** A fleet kernel build with the /proc/version its hosts report (the worker builds for exactly that). */
export interface FleetKernelFacts extends FleetKernel {
  procVersion: string;
}

/**
 * The kernel builds the fleet runs now (enrolled, not revoked hosts), with
 * their host counts and highest recorded level, ordered by release.
 */
export async function fleetKernels(db: Kysely<PipelineDatabase>): Promise<FleetKernelFacts[]> {
  const rows = await db
    .selectFrom('hosts')
    .select(['kernel_id', 'release', 'kernel_json'])
    .where('revoked_at', 'is', null)
    .execute();
  const byId = new Map<string, { release: string; procVersion: string; hosts: number }>();
  for (const r of rows) {
    const seen = byId.get(r.kernel_id);
    if (seen !== undefined) {
      seen.hosts++;
      continue;
    }
    // Written by the host routes from a validated KernelIdentity.
    const k = JSON.parse(r.kernel_json) as KernelIdentity;
    byId.set(r.kernel_id, { release: r.release, procVersion: k.procVersion, hosts: 1 });
  }
  if (byId.size === 0) return [];
  const levels = await db
    .selectFrom('patches')
    .select(['kernel_id', (eb) => eb.fn.max('level').as('max')])
    .where('kernel_id', 'in', [...byId.keys()])
    .groupBy('kernel_id')
    .execute();
  const latest = new Map(levels.map((l) => [l.kernel_id, Number(l.max ?? 0)]));
  return [...byId.entries()]
    .map(([kernelId, k]) => ({
      kernelId,
      release: k.release,
      ...kernelVersions(k.procVersion, k.release),
      hosts: k.hosts,
      latestLevel: latest.get(kernelId) ?? 0,
      procVersion: k.procVersion,
    }))
    .sort(
      (a, b) => a.release.localeCompare(b.release, 'en', { numeric: true }) || a.kernelId.localeCompare(b.kernelId),
    );
}

/** The API form (without the /proc/version line). */
export function publicKernel(k: FleetKernelFacts): FleetKernel {
  const { procVersion: _omit, ...rest } = k;
  return rest;
}
