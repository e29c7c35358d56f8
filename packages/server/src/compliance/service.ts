import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { affected, type CveDatabase } from '@livegraft/inspector';
import {
  LivegraftError,
  type CheckinRequest,
  type ComplianceReport,
  type CveHosts,
  type ExposureWindow,
  type FleetExposure,
  type HostExposure,
  type HostRecord,
  type SlaPolicy,
  type TripwireEvent,
  type TripwireRecord,
} from '@livegraft/protocol';
import { AlertSender, tripwireAlert } from './alerts.ts';
import { DATASET_FILE, loadServerDataset } from './dataset.ts';
import { DatasetWatch, fileStamp, registerDatasetGauges } from './dataset-watch.ts';
import { ExposureService, kernelString, type ComplianceHost } from './exposure.ts';
import type { WriteSync } from '../db/node-sqlite.ts';
import { HistoryRepository } from './history.ts';
import { LevelCatalog } from './levels.ts';
import { complianceMetrics, registerSlaGauge, type ComplianceMetrics } from './metrics.ts';
import { PolicyRepository } from './policy.ts';
import { allWindows, buildReport } from './report.ts';
import type { ComplianceDatabase } from './schema.ts';
import { TripwireRepository, type TripwireQuery } from './tripwires.ts';
import { AlertDeduper, TRIPWIRE_LIMITS, tripwireRefusedCounter, type TripwireLimits } from './tripwire-guard.ts';
import {
  debianPackageOf,
  vexDocument,
  vexStatements,
  type VexDocument,
  type VexHostInput,
  type VexStatement,
} from './vex.ts';
import { defaultVexAuthor } from './vex-author.ts';
import { statementsDigest, VexStampStore } from './vex-store.ts';

export const COMPLIANCE_TOOLING = 'livegraft-server/0.1.0';

export interface ComplianceOptions {
  /** The server's database (migrated, including 0010). */
  db: Kysely<unknown>;
  dataDir: string;
  clock: () => Date;
  log: Logger;
  randomId: () => string;
  /** All hosts as the API shows them (feed and tags, when the server has fleet support), for report filters. */
  listHosts: (filter: { feed?: string; tag?: string }) => Promise<HostRecord[]>;
  /** Defaults to <dataDir>/cves.json.gz or the shipped dataset, loaded once. */
  dataset?: CveDatabase;
  alertWebhook?: string | undefined;
  /** Policy until one is set through the API. */
  defaultPolicy?: SlaPolicy;
  /** OpenVEX `author`: an IRI or email of the organisation (validated with the server configuration). */
  vexAuthor?: string | undefined;
  /** This node is the database's only writer (embedded SQLite): see HistoryOptions. */
  soleWriter?: boolean;
  /** SQLite only: runs a transaction at once on the connection (see WriteSync). */
  writeSync?: WriteSync | undefined;
  fetch?: typeof fetch;
  /** The server's metrics registry; a private one otherwise. */
  registry?: Registry;
  alertBackoffMs?: (attempt: number) => number;
  /** Per-host tripwire rate, cap, retention and alert window (tests shorten them). */
  tripwireLimits?: Partial<TripwireLimits>;
  /** How often <dataDir>/cves.json.gz is checked for a refreshed dataset (not when `dataset` is given). */
  datasetCheckMs?: number;
}

export interface ReportFilters {
  feed?: string | undefined;
  tag?: string | undefined;
}

/** Exposure, SLA compliance, OpenVEX and tripwires: everything the compliance routes need. */
export class ComplianceService {
  readonly metrics: ComplianceMetrics;
  readonly exposure: ExposureService;
  readonly #o: ComplianceOptions;
  readonly #history: HistoryRepository;
  readonly #levels: LevelCatalog;
  readonly #policy: PolicyRepository;
  readonly #tripwires: TripwireRepository;
  readonly #alerts: AlertSender | undefined;
  readonly tripwireLimits: Readonly<TripwireLimits>;
  readonly #alerted: AlertDeduper;
  readonly #vexStamps: VexStampStore;
  #expiredAt = 0;
  #datasetWatch: DatasetWatch | undefined;

  private constructor(o: ComplianceOptions, dataset: CveDatabase) {
    this.tripwireLimits = { ...TRIPWIRE_LIMITS, ...o.tripwireLimits };
    this.#alerted = new AlertDeduper(this.tripwireLimits.alertWindowMs);
    const db = o.db as Kysely<ComplianceDatabase>;
    this.#o = o;
    this.#history = new HistoryRepository(db, { soleWriter: o.soleWriter === true, writeSync: o.writeSync });
    this.#levels = new LevelCatalog(db);
    this.#policy = new PolicyRepository(db, o.defaultPolicy);
    this.#tripwires = new TripwireRepository(db);
    this.#vexStamps = new VexStampStore(o.db);
    this.exposure = new ExposureService(db, dataset, this.#levels, this.#history, o.clock);
    this.metrics = complianceMetrics(o.registry);
    registerDatasetGauges(this.metrics.registry, async () => {
      const hosts = await this.exposure.hosts();
      const unknown = this.exposure.unknownDebianVersions(hosts);
      return {
        status: this.exposure.datasetInfo(),
        unknownDebianHosts: [...unknown.values()].reduce((a, b) => a + b, 0),
      };
    });
    registerSlaGauge(this.metrics.registry, async () => {
      const { report } = await this.report();
      return {
        openBreaches: report.summary.openBreaches,
        hostsInBreach: report.hosts.filter((h) => h.openBreaches > 0).length,
      };
    });
    this.#alerts =
      o.alertWebhook === undefined
        ? undefined
        : new AlertSender({
            url: o.alertWebhook,
            log: o.log.child({ component: 'alerts' }),
            ...(o.fetch === undefined ? {} : { fetch: o.fetch }),
            ...(o.alertBackoffMs === undefined ? {} : { backoffMs: o.alertBackoffMs }),
          });
  }

  static async create(o: ComplianceOptions): Promise<ComplianceService> {
    const path = join(o.dataDir, DATASET_FILE);
    const stamp = await fileStamp(path);
    const dataset = o.dataset ?? (await loadServerDataset(o.dataDir));
    const service = new ComplianceService(o, dataset);
    const status = service.exposure.datasetInfo();
    o.log.info(
      { cves: dataset.entries.size, generatedAt: dataset.generatedAt, ageDays: status.ageDays },
      'CVE dataset loaded',
    );
    for (const w of status.warnings) o.log.warn({ code: w.code }, w.message);
    if (o.dataset === undefined) {
      service.#datasetWatch = new DatasetWatch({
        path,
        stamp,
        load: () => loadServerDataset(o.dataDir),
        use: (db) => service.exposure.useDataset(db),
        log: o.log.child({ component: 'cve-dataset' }),
        ...(o.datasetCheckMs === undefined ? {} : { intervalMs: o.datasetCheckMs }),
      });
      service.#datasetWatch.start();
    }
    return service;
  }

  /**
   * Called by the check-in route after the host row is updated. A failure is
   * logged, not thrown: compliance history must never stop patch delivery.
   */
  async recordCheckin(hostId: string, report: CheckinRequest, now: Date): Promise<void> {
    try {
      const cves = await this.#levels.cves(report.kernel.id, report.appliedLevel);
      await this.#history.recordCheckin(hostId, report, now, cves);
    } catch (err) {
      this.#o.log.error({ err, hostId }, 'could not record the check-in in the compliance history');
    }
  }

  async #host(id: string): Promise<ComplianceHost> {
    const [host] = await this.exposure.hosts([id]);
    if (host === undefined) throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${id}`);
    return host;
  }

  /** Hosts in scope of the filters, ordered by hostname. */
  async #scope(filters: ReportFilters): Promise<ComplianceHost[]> {
    if (filters.feed === undefined && filters.tag === undefined) return this.exposure.hosts();
    const records = await this.#o.listHosts({
      ...(filters.feed === undefined ? {} : { feed: filters.feed }),
      ...(filters.tag === undefined ? {} : { tag: filters.tag }),
    });
    const ids = records.filter((h) => h.revokedAt === undefined || h.revokedAt === null).map((h) => h.id);
    return this.exposure.hosts(ids);
  }

  async hostExposure(id: string): Promise<HostExposure> {
    return this.exposure.hostExposure(await this.#host(id));
  }

  async fleetExposure(filters: ReportFilters = {}): Promise<FleetExposure> {
    return this.exposure.fleet(await this.#scope(filters), this.#o.clock());
  }

  async cve(id: string): Promise<CveHosts> {
    return this.exposure.cveHosts(id, await this.exposure.hosts());
  }

  policy(): Promise<SlaPolicy> {
    return this.#policy.get();
  }

  setPolicy(p: SlaPolicy): Promise<SlaPolicy> {
    return this.#policy.set(p, this.#o.clock());
  }

  /** The report and every window behind it (the CSV form lists the windows). */
  async report(filters: ReportFilters = {}): Promise<{ report: ComplianceReport; windows: ExposureWindow[] }> {
    const hosts = await this.#scope(filters);
    const input = {
      hosts,
      histories: await this.#history.histories(hosts.map((h) => h.id)),
      levelCves: (h: ComplianceHost) => this.#levels.cves(h.kernelId, h.appliedLevel),
      affectedOf: this.exposure.affectedOfSegment,
      policy: await this.#policy.get(),
      now: this.#o.clock(),
      filters: {
        ...(filters.feed === undefined ? {} : { feed: filters.feed }),
        ...(filters.tag === undefined ? {} : { tag: filters.tag }),
      },
      dataset: this.exposure.datasetInfo(hosts),
    };
    const windows = await allWindows(input);
    return { report: buildReport(input, windows), windows };
  }

  /** Windows of one host (open and closed) under the current policy. */
  async hostWindows(id: string): Promise<ExposureWindow[]> {
    const host = await this.#host(id);
    return allWindows({
      hosts: [host],
      histories: await this.#history.histories([id]),
      levelCves: (h) => this.#levels.cves(h.kernelId, h.appliedLevel),
      affectedOf: this.exposure.affectedOfSegment,
      policy: await this.#policy.get(),
      now: this.#o.clock(),
      filters: {},
      dataset: this.exposure.datasetInfo(),
    });
  }

  async #vexInput(host: ComplianceHost): Promise<VexHostInput> {
    const exposure = await this.exposure.hostExposure(host);
    let debianPackageVersion: string | null = null;
    try {
      debianPackageVersion = affected(this.exposure.dataset, kernelString(host.procVersion, host.release)).kernel
        .debianPackageVersion;
    } catch {
      /* an unplaceable kernel has no package version; its exposure says why */
    }
    // A Debian version the CVE data does not know is still the installed package scanners match.
    debianPackageVersion ??= debianPackageOf(host.procVersion, host.release);
    const dataset = this.exposure.dataset;
    return {
      exposure,
      machine: host.machine,
      debianPackageVersion,
      known: (cve) => dataset.positionOf(cve) !== undefined,
      applied: await this.#levels.get(host.kernelId, host.appliedLevel),
      published: await this.#levels.publishedLevels(host.kernelId),
    };
  }

  /**
   * The OpenVEX document of one host or of the fleet, with `extra` statements
   * (user space) after the kernel's. Its @id and version are stored per scope:
   * the same statements give the same document header, changed ones a new version.
   */
  async vex(
    hostId?: string,
    extra?: (hosts: readonly ComplianceHost[]) => Promise<VexStatement[]>,
  ): Promise<VexDocument> {
    const hosts = hostId === undefined ? await this.exposure.hosts() : [await this.#host(hostId)];
    const inputs: VexHostInput[] = [];
    for (const h of hosts) inputs.push(await this.#vexInput(h));
    const statements = [...vexStatements(inputs), ...(extra === undefined ? [] : await extra(hosts))];
    const scope = hostId === undefined ? 'fleet' : `host:${hostId}`;
    const stamp = await this.#vexStamps.stamp(
      scope,
      statementsDigest(statements),
      this.#o.clock(),
      () => `urn:uuid:${this.#o.randomId()}`,
    );
    return vexDocument(statements, {
      ...stamp,
      author: this.#o.vexAuthor ?? defaultVexAuthor(),
      tooling: COMPLIANCE_TOOLING,
    });
  }

  /** Stores a host's tripwire events, counts them and raises one alert for the new ones. */
  /**
   * Stores a host's events up to its cap, drops those past the retention
   * period, and alerts once per host and CVE within the alert window.
   */
  async recordTripwires(hostId: string, events: readonly TripwireEvent[]): Promise<TripwireRecord[]> {
    const now = this.#o.clock();
    const limits = this.tripwireLimits;
    // Retention runs at most once a minute per node; it is one indexed delete.
    if (now.getTime() - this.#expiredAt >= 60_000) {
      this.#expiredAt = now.getTime();
      await this.#tripwires.expire(new Date(now.getTime() - limits.retentionDays * 86_400_000));
    }
    const room = Math.max(0, limits.maxEventsPerHost - (await this.#tripwires.countForHost(hostId)));
    const kept = events.slice(0, room);
    if (kept.length < events.length) {
      tripwireRefusedCounter(this.metrics.registry).inc({ reason: 'host_cap' }, events.length - kept.length);
      this.#o.log.warn(
        { hostId, dropped: events.length - kept.length, cap: limits.maxEventsPerHost },
        'tripwire: host is at its stored-event cap; events dropped',
      );
    }
    const fresh = kept.length === 0 ? [] : await this.#tripwires.record(hostId, kept, now);
    for (const e of fresh) this.metrics.tripwireEvents.inc({ cve: e.cve });
    const alerting = new Set(
      this.#alerted.take(
        hostId,
        fresh.map((e) => e.cve),
        now.getTime(),
      ),
    );
    const alerted = fresh.filter((e) => alerting.has(e.cve));
    if (alerted.length > 0) {
      this.#o.log.warn(
        { hostId, cves: [...alerting], events: alerted.length },
        'tripwire: exploit attempt blocked by a live patch',
      );
      this.#alerts?.send(tripwireAlert(alerted, now));
    } else if (fresh.length > 0) {
      this.#o.log.info({ hostId, events: fresh.length }, 'tripwire: more events of an attempt already alerted');
    }
    return fresh;
  }

  listTripwires(q: TripwireQuery): Promise<TripwireRecord[]> {
    return this.#tripwires.list(q);
  }

  /** Resolves when queued alerts were delivered or given up (tests). */
  async alertsIdle(): Promise<void> {
    await this.#alerts?.idle();
  }

  async close(): Promise<void> {
    this.#datasetWatch?.stop();
    await this.#alerts?.close();
  }
}
