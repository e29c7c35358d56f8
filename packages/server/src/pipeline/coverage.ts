import type { Kysely } from 'kysely';
import type { CveDatabase } from '@livegraft/inspector';
import type {
  CoverageCell,
  CoverageReport,
  CoverageRow,
  CoverageState,
  PatchManifest,
  PlanState,
} from '@livegraft/protocol';
import { haltKey } from '../fleet/desired.ts';
import type { AffectingCve } from '../compliance/windows.ts';
import { branchOf, compareVersions, fleetKernels, publicKernel, type FleetKernelFacts } from './kernels.ts';
import type { PipelineDatabase } from './schema.ts';

/** What coverage needs from compliance: the CVEs affecting a kernel build, and the CVE data. */
export interface CoverageSource {
  affectedBy(kernel: { procVersion: string; release: string }): ReadonlyMap<string, AffectingCve> | undefined;
  readonly dataset: CveDatabase;
}

interface PlanFact {
  fixId: string;
  state: PlanState;
  version: string | null;
  reason: string | null;
  level: number | null;
  jobState: string | null;
}

interface LevelFact {
  level: number;
  cves: Set<string>;
  published: boolean;
}

const PLAN_RANK: Record<PlanState, number> = {
  released: 9,
  'already-fixed': 8,
  'to-build': 7,
  'validation-failed': 5,
  failed: 4,
  'not-live-patchable': 3,
  'not-affected': 2,
  superseded: 1,
};

function cell(kernelId: string, state: CoverageState, o: Partial<CoverageCell> = {}): CoverageCell {
  return {
    kernelId,
    state,
    version: null,
    level: null,
    hostsApplied: 0,
    hosts: 0,
    reason: null,
    fixId: null,
    ...o,
  };
}

/** Where one CVE stands on one kernel build: on hosts first, then the pipeline's plan, then the CVE data. */
function cellFor(
  cve: string,
  k: FleetKernelFacts,
  affects: ReadonlyMap<string, AffectingCve> | undefined,
  plans: PlanFact[],
  levels: LevelFact[],
  applied: Map<number, number>,
  validated: ReadonlySet<string>,
  halted: ReadonlySet<string>,
  source: CoverageSource,
): CoverageCell {
  const base = { hosts: k.hosts };
  // The lowest offered (published, not halted) level carrying the CVE; levels are cumulative.
  const carrying = levels.filter((l) => l.published && l.cves.has(cve) && !halted.has(haltKey(k.kernelId, l.level)));
  const first = carrying[0]?.level;
  if (first !== undefined) {
    let n = 0;
    for (const [lvl, count] of applied) {
      if (levels.some((l) => l.level === lvl && l.cves.has(cve))) n += count;
    }
    if (n > 0) return cell(k.kernelId, 'applied', { ...base, level: first, hostsApplied: n });
  }
  const plan = [...plans].sort((a, b) => PLAN_RANK[b.state] - PLAN_RANK[a.state])[0];
  const fixId = plan?.fixId ?? null;
  if (first !== undefined) {
    return cell(k.kernelId, 'released', { ...base, level: first, fixId });
  }
  if (plan !== undefined) {
    const o = { ...base, fixId, reason: plan.reason, level: plan.level };
    switch (plan.state) {
      case 'already-fixed':
        return cell(k.kernelId, 'fixed-in-build', { ...o, version: plan.version });
      case 'not-affected':
        return cell(k.kernelId, 'not-affected', o);
      case 'not-live-patchable':
        return cell(k.kernelId, 'not-live-patchable', o);
      case 'failed':
      case 'validation-failed':
        return cell(k.kernelId, 'failed', o);
      case 'released':
        return cell(k.kernelId, validated.has(haltKey(k.kernelId, plan.level ?? 0)) ? 'validated' : 'built', o);
      case 'to-build':
        return cell(k.kernelId, plan.jobState === 'validating' ? 'built' : 'queued', o);
      case 'superseded':
        break;
    }
  }
  if (affects !== undefined && !affects.has(cve)) {
    const entry = source.dataset.entries.get(cve);
    const fixed = k.upstreamVersion === null ? undefined : entry?.stableFixes.get(branchOf(k.upstreamVersion))?.text;
    if (fixed !== undefined && k.upstreamVersion !== null && compareVersions(fixed, k.upstreamVersion) <= 0) {
      return cell(k.kernelId, 'fixed-in-build', { ...base, version: fixed });
    }
    return cell(k.kernelId, 'not-affected', base);
  }
  return cell(k.kernelId, 'no-fix', { ...base, fixId });
}

/**
 * For each CVE that affects a kernel build in the fleet (by the CVE data),
 * and each CVE a submitted fix names: its state on every fleet kernel build.
 */
export async function coverageReport(
  db: Kysely<PipelineDatabase>,
  source: CoverageSource,
  now: Date,
): Promise<CoverageReport> {
  const kernels = await fleetKernels(db);
  const ids = kernels.map((k) => k.kernelId);
  const affects = new Map(kernels.map((k) => [k.kernelId, source.affectedBy(k)]));
  const fixes = await db.selectFrom('fixes').select(['id', 'cves_json']).execute();
  const fixCves = new Map(fixes.map((f) => [f.id, JSON.parse(f.cves_json) as string[]]));
  const plans =
    ids.length === 0
      ? []
      : await db
          .selectFrom('fix_plans')
          .leftJoin('jobs', 'jobs.id', 'fix_plans.job_id')
          .select([
            'fix_plans.fix_id',
            'fix_plans.kernel_id',
            'fix_plans.state',
            'fix_plans.version',
            'fix_plans.reason',
            'fix_plans.level',
            'jobs.state as job_state',
          ])
          .where('fix_plans.kernel_id', 'in', ids)
          .execute();
  const patchRows =
    ids.length === 0
      ? []
      : await db
          .selectFrom('patches')
          .select(['kernel_id', 'level', 'manifest_json', 'published_at'])
          .where('kernel_id', 'in', ids)
          .orderBy('level')
          .execute();
  const levels = new Map<string, LevelFact[]>();
  for (const r of patchRows) {
    const m = JSON.parse(r.manifest_json) as PatchManifest;
    const list = levels.get(r.kernel_id) ?? [];
    list.push({ level: r.level, cves: new Set(m.cves), published: r.published_at !== null });
    levels.set(r.kernel_id, list);
  }
  const hostRows =
    ids.length === 0
      ? []
      : await db
          .selectFrom('hosts')
          .select(['kernel_id', 'applied_level', (eb) => eb.fn.countAll().as('n')])
          .where('revoked_at', 'is', null)
          .groupBy(['kernel_id', 'applied_level'])
          .execute();
  const applied = new Map<string, Map<number, number>>();
  for (const r of hostRows) {
    const m = applied.get(r.kernel_id) ?? new Map<number, number>();
    m.set(Number(r.applied_level), Number(r.n));
    applied.set(r.kernel_id, m);
  }
  const validatedRows = await db
    .selectFrom('level_validations')
    .select(['kernel_id', 'level'])
    .where('result', 'in', ['passed', 'override'])
    .execute();
  const validated = new Set(validatedRows.map((r) => haltKey(r.kernel_id, r.level)));
  const haltRows = await db.selectFrom('level_halts').select(['kernel_id', 'level']).execute();
  const halted = new Set(haltRows.map((r) => haltKey(r.kernel_id, r.level)));

  const cves = new Map<string, { severity: string | null; cvss: number | null }>();
  for (const a of affects.values()) {
    for (const [id, info] of a ?? []) cves.set(id, { severity: info.severity, cvss: info.cvssScore });
  }
  for (const list of fixCves.values()) {
    for (const id of list) {
      if (cves.has(id)) continue;
      const rec = source.dataset.entries.get(id)?.record;
      cves.set(id, { severity: rec?.cvss3?.severity?.toLowerCase() ?? null, cvss: rec?.cvss3?.score ?? null });
    }
  }
  const rows: CoverageRow[] = [];
  for (const [cve, info] of [...cves.entries()].sort(([a], [b]) => (a < b ? 1 : a > b ? -1 : 0))) {
    const cells = kernels.map((k) => {
      const mine: PlanFact[] = plans
        .filter((p) => p.kernel_id === k.kernelId && (fixCves.get(p.fix_id) ?? []).includes(cve))
        .map((p) => ({
          fixId: p.fix_id,
          state: p.state as PlanState,
          version: p.version,
          reason: p.reason,
          level: p.level,
          jobState: p.job_state ?? null,
        }));
      return cellFor(
        cve,
        k,
        affects.get(k.kernelId),
        mine,
        levels.get(k.kernelId) ?? [],
        applied.get(k.kernelId) ?? new Map(),
        validated,
        halted,
        source,
      );
    });
    rows.push({ cve, severity: info.severity, cvss: info.cvss, cells });
  }
  return { generatedAt: now.toISOString(), kernels: kernels.map(publicKernel), rows };
}
