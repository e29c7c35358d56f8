import type { Kysely } from 'kysely';
import {
  affected,
  datasetStatus,
  exposure,
  severityBucket,
  unknownDebianVersion,
  unknownDebianWarning,
  type CveDatabase,
} from '@livegraft/inspector';
import {
  isLivegraftError,
  type CveDatasetStatus,
  type CveHosts,
  type FleetExposure,
  type HostExposure,
  type KernelIdentity,
  type SeverityCounts,
} from '@livegraft/protocol';
import type { HistoryRepository, HostHistory, KernelSegment } from './history.ts';
import type { LevelCatalog } from './levels.ts';
import type { ComplianceDatabase } from './schema.ts';
import type { AffectingCve } from './windows.ts';

/** Distinct kernels whose affected-CVE maps are kept; beyond this the memo restarts. */
const MAX_AFFECTED_MEMO = 2_000;

/** A host as compliance sees it. */
export interface ComplianceHost {
  id: string;
  hostname: string;
  kernelId: string;
  release: string;
  procVersion: string;
  /** uname -m */
  machine: string;
  appliedLevel: number;
  enrolledAt: string;
  lastCheckinAt: string | null;
}

export function emptyCounts(): SeverityCounts {
  return { critical: 0, high: 0, medium: 0, low: 0, none: 0, 'not rated': 0, total: 0 };
}

function addCounts(into: SeverityCounts, c: SeverityCounts): void {
  into.critical += c.critical;
  into.high += c.high;
  into.medium += c.medium;
  into.low += c.low;
  into.none += c.none;
  into['not rated'] += c['not rated'];
  into.total += c.total;
}

/** The kernel string the inspector evaluates: the /proc/version line (it carries Debian's package version), else the release. */
export function kernelString(procVersion: string, release: string): string {
  const line = procVersion.split('\n')[0]?.trim() ?? '';
  return line === '' ? release : line;
}

export class ExposureService {
  readonly #db: Kysely<ComplianceDatabase>;
  #dataset: CveDatabase;
  readonly #levels: LevelCatalog;
  readonly #history: HistoryRepository;
  readonly #affectedMemo = new Map<string, ReadonlyMap<string, AffectingCve> | undefined>();
  readonly #clock: () => Date;

  constructor(
    db: Kysely<ComplianceDatabase>,
    dataset: CveDatabase,
    levels: LevelCatalog,
    history: HistoryRepository,
    clock: () => Date = () => new Date(),
  ) {
    this.#db = db;
    this.#dataset = dataset;
    this.#levels = levels;
    this.#history = history;
    this.#clock = clock;
  }

  get dataset(): CveDatabase {
    return this.#dataset;
  }

  /** Switches to a refreshed dataset; evaluations made with the old one are dropped. */
  useDataset(dataset: CveDatabase): void {
    this.#dataset = dataset;
    this.#affectedMemo.clear();
  }

  /** Hosts on a Debian kernel version the data does not know, by version. */
  unknownDebianVersions(hosts: readonly ComplianceHost[]): Map<string, number> {
    const out = new Map<string, number>();
    for (const h of hosts) {
      const v = unknownDebianVersion(this.#dataset, kernelString(h.procVersion, h.release));
      if (v !== null) out.set(v, (out.get(v) ?? 0) + 1);
    }
    return out;
  }

  /** The data's age and its warnings; with hosts, also DEBIAN_VERSION_UNKNOWN for those on versions it does not know. */
  datasetInfo(hosts: readonly ComplianceHost[] = []): CveDatasetStatus {
    const status = datasetStatus(this.#dataset, this.#clock());
    const unknown = unknownDebianWarning(this.#dataset, this.unknownDebianVersions(hosts));
    return unknown === null ? status : { ...status, warnings: [...status.warnings, unknown] };
  }

  /** Hosts from the shared hosts table (ids undefined: all), ordered by hostname. */
  async hosts(ids?: readonly string[]): Promise<ComplianceHost[]> {
    if (ids !== undefined && ids.length === 0) return [];
    let q = this.#db
      .selectFrom('hosts')
      .select([
        'id',
        'hostname',
        'kernel_id',
        'release',
        'kernel_json',
        'applied_level',
        'enrolled_at',
        'last_checkin_at',
      ]);
    // Revoked hosts leave the fleet views; asked for by id, a host is shown anyway.
    q = ids === undefined ? q.where('revoked_at', 'is', null) : q.where('id', 'in', ids);
    const rows = await q.orderBy('hostname').orderBy('id').execute();
    return rows.map((r) => {
      // Written by the host routes from a validated KernelIdentity.
      const k = JSON.parse(r.kernel_json) as KernelIdentity;
      return {
        id: r.id,
        hostname: r.hostname,
        kernelId: r.kernel_id,
        release: r.release,
        procVersion: k.procVersion,
        machine: k.machine,
        appliedLevel: r.applied_level,
        enrolledAt: r.enrolled_at,
        lastCheckinAt: r.last_checkin_at,
      };
    });
  }

  /** CVEs affecting a kernel, or undefined if the inspector cannot place it. Memoised per kernel string. */
  affectedBy(kernel: { procVersion: string; release: string }): ReadonlyMap<string, AffectingCve> | undefined {
    const key = kernelString(kernel.procVersion, kernel.release);
    if (this.#affectedMemo.has(key)) return this.#affectedMemo.get(key);
    let map: Map<string, AffectingCve> | undefined;
    try {
      const r = affected(this.#dataset, key);
      map = new Map(
        r.affected.map((f) => [f.id, { severity: f.severity, cvssScore: f.cvssScore, published: f.published }]),
      );
    } catch (err) {
      if (!isLivegraftError(err)) throw err;
      map = undefined;
    }
    if (this.#affectedMemo.size >= MAX_AFFECTED_MEMO) this.#affectedMemo.clear();
    this.#affectedMemo.set(key, map);
    return map;
  }

  readonly affectedOfSegment = (k: KernelSegment): ReadonlyMap<string, AffectingCve> | undefined => this.affectedBy(k);

  async hostExposure(host: ComplianceHost): Promise<HostExposure> {
    const appliedCves = await this.#levels.cves(host.kernelId, host.appliedLevel);
    const kernel = kernelString(host.procVersion, host.release);
    const base = {
      hostId: host.id,
      hostname: host.hostname,
      kernelId: host.kernelId,
      release: host.release,
      kernel,
      appliedLevel: host.appliedLevel,
      appliedCves,
      dataset: this.datasetInfo([host]),
    };
    let r: ReturnType<typeof exposure>;
    try {
      r = exposure(this.#dataset, kernel, appliedCves);
    } catch (err) {
      if (!isLivegraftError(err)) throw err;
      return {
        ...base,
        counts: emptyCounts(),
        effective: [],
        mitigated: [],
        notApplicable: appliedCves,
        error: { code: err.code, message: err.message },
        warnings: [],
      };
    }
    return {
      ...base,
      counts: { ...r.counts },
      effective: r.effective.map((f) => ({
        id: f.id,
        title: f.title,
        severity: f.severity,
        cvssScore: f.cvssScore,
        published: f.published,
        fixedIn: f.fixedIn,
      })),
      mitigated: r.mitigated,
      notApplicable: r.notApplicable,
      warnings: r.inspection.warnings,
    };
  }

  async fleet(hosts: readonly ComplianceHost[], now: Date): Promise<FleetExposure> {
    const counts = emptyCounts();
    const hostsExposed = emptyCounts();
    let mitigated = 0;
    let unevaluated = 0;
    const perHost: FleetExposure['perHost'] = [];
    for (const h of hosts) {
      const e = await this.hostExposure(h);
      if (e.error !== undefined) unevaluated++;
      addCounts(counts, e.counts);
      for (const s of ['critical', 'high', 'medium', 'low', 'none', 'not rated', 'total'] as const) {
        if (e.counts[s] > 0) hostsExposed[s]++;
      }
      mitigated += e.mitigated.length;
      perHost.push({
        hostId: h.id,
        hostname: h.hostname,
        release: h.release,
        appliedLevel: h.appliedLevel,
        counts: e.counts,
        mitigated: e.mitigated.length,
        ...(e.error === undefined ? {} : { error: `${e.error.code}: ${e.error.message}` }),
      });
    }
    return {
      generatedAt: now.toISOString(),
      hosts: hosts.length,
      unevaluated,
      counts,
      hostsExposed,
      mitigated,
      perHost,
    };
  }

  /** Which hosts one CVE leaves exposed, which a live patch fixed, which a kernel upgrade fixed. */
  async cveHosts(cveId: string, hosts: readonly ComplianceHost[]): Promise<CveHosts> {
    const entry = this.#dataset.entries.get(cveId);
    const score = entry?.record.cvss3?.score ?? null;
    const out: CveHosts = {
      id: cveId,
      known: entry !== undefined,
      title: entry?.record.title ?? null,
      severity: severityBucket(score),
      cvssScore: score,
      published: entry?.record.published ?? null,
      exposed: [],
      fixedLive: [],
      fixedByUpgrade: [],
    };
    if (entry === undefined) return out;
    const histories = await this.#history.histories(hosts.map((h) => h.id));
    for (const h of hosts) {
      const ref = { hostId: h.id, hostname: h.hostname, release: h.release };
      if (this.affectedBy(h)?.has(cveId) === true) {
        const cves = await this.#levels.cves(h.kernelId, h.appliedLevel);
        if (cves.includes(cveId)) out.fixedLive.push({ ...ref, level: h.appliedLevel });
        else out.exposed.push(ref);
        continue;
      }
      const upgradedAt = upgradeTime(histories.get(h.id), cveId, this.affectedOfSegment);
      if (upgradedAt !== undefined) out.fixedByUpgrade.push({ ...ref, at: upgradedAt });
    }
    return out;
  }
}

/** When the host last left a kernel the CVE affects, if it ever ran one. */
function upgradeTime(
  history: HostHistory | undefined,
  cveId: string,
  affectedOf: (k: KernelSegment) => ReadonlyMap<string, AffectingCve> | undefined,
): string | undefined {
  const kernels = history?.kernels ?? [];
  let at: string | undefined;
  for (let i = 0; i + 1 < kernels.length; i++) {
    const k = kernels[i] as KernelSegment;
    const next = kernels[i + 1] as KernelSegment;
    if (affectedOf(k)?.has(cveId) === true && affectedOf(next)?.has(cveId) !== true) at = next.firstSeen;
  }
  return at;
}
