import { stat } from 'node:fs/promises';
import type { Logger } from 'pino';
import { Gauge, type Registry } from 'prom-client';
import type { CveDatabase, DatasetStatus } from '@livegraft/inspector';

/** How often the server looks at <data-dir>/cves.json.gz for a new version (one stat). */
export const DATASET_CHECK_MS = 30_000;

/** Identifies one version of the file: `livegraft cve update` renames a new file into place. */
export async function fileStamp(path: string): Promise<string | null> {
  try {
    const s = await stat(path);
    return `${s.ino}:${s.size}:${s.mtimeMs}`;
  } catch {
    return null;
  }
}

export interface DatasetWatchOptions {
  path: string;
  /** The stamp of the file the server loaded at start (null: it used the shipped dataset). */
  stamp: string | null;
  load: (path: string) => Promise<CveDatabase>;
  use: (db: CveDatabase) => void;
  log: Logger;
  intervalMs?: number;
}

/**
 * Picks up a refreshed dataset without a restart: when the file's stamp changes, the new file is
 * loaded and validated whole, then swapped in. A file that does not load is logged and the
 * server keeps the data it has; a removed file changes nothing until a new one appears.
 */
export class DatasetWatch {
  readonly #o: DatasetWatchOptions;
  #stamp: string | null;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<'unchanged' | 'reloaded' | 'failed'> | undefined;

  constructor(o: DatasetWatchOptions) {
    this.#o = o;
    this.#stamp = o.stamp;
  }

  start(): void {
    this.#timer ??= setInterval(() => void this.check(), this.#o.intervalMs ?? DATASET_CHECK_MS);
    this.#timer.unref();
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  check(): Promise<'unchanged' | 'reloaded' | 'failed'> {
    this.#running ??= this.#check().finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }

  async #check(): Promise<'unchanged' | 'reloaded' | 'failed'> {
    const stamp = await fileStamp(this.#o.path);
    if (stamp === this.#stamp || stamp === null) return 'unchanged';
    this.#stamp = stamp;
    try {
      const db = await this.#o.load(this.#o.path);
      this.#o.use(db);
      this.#o.log.info(
        { path: this.#o.path, cves: db.entries.size, generatedAt: db.generatedAt },
        'CVE dataset reloaded',
      );
      return 'reloaded';
    } catch (err) {
      this.#o.log.error(
        { err, path: this.#o.path },
        'the new CVE dataset does not load; the server keeps the one it has',
      );
      return 'failed';
    }
  }
}

export const DATASET_AGE_GAUGE = 'livegraft_cve_dataset_age_days';
export const DATASET_STALE_GAUGE = 'livegraft_cve_dataset_stale';
export const UNKNOWN_DEBIAN_GAUGE = 'livegraft_hosts_unknown_debian_kernel';

/**
 * livegraft_cve_dataset_age_days (days since the older of the CVE records and the Debian
 * changelogs, -1 when unknown), livegraft_cve_dataset_stale (1 past 14 days) and
 * livegraft_hosts_unknown_debian_kernel (hosts on a Debian kernel version the data does not know).
 */
export function registerDatasetGauges(
  registry: Registry,
  read: () => Promise<{ status: DatasetStatus; unknownDebianHosts: number }>,
): void {
  if (registry.getSingleMetric(DATASET_AGE_GAUGE) !== undefined) return;
  let pending: Promise<{ status: DatasetStatus; unknownDebianHosts: number }> | undefined;
  // One read serves the three gauges of one scrape.
  const once = (): Promise<{ status: DatasetStatus; unknownDebianHosts: number }> => {
    pending ??= read().finally(() => setImmediate(() => (pending = undefined)));
    return pending;
  };
  new Gauge({
    name: DATASET_AGE_GAUGE,
    help: 'Age in days of the CVE data (the older of the kernel CVE records and the Debian changelogs); -1 if unknown',
    registers: [registry],
    async collect() {
      this.set((await once()).status.ageDays ?? -1);
    },
  });
  new Gauge({
    name: DATASET_STALE_GAUGE,
    help: 'Whether the CVE data is older than 14 days (1) or not (0)',
    registers: [registry],
    async collect() {
      this.set((await once()).status.stale ? 1 : 0);
    },
  });
  new Gauge({
    name: UNKNOWN_DEBIAN_GAUGE,
    help: "Hosts running a Debian kernel version the CVE data's changelogs do not know (run livegraft cve update)",
    registers: [registry],
    async collect() {
      this.set((await once()).unknownDebianHosts);
    },
  });
}
