/**
 * Tables of the compliance features (migration 0010). Kept apart from
 * db/schema.ts so the rest of the server's types do not change; repositories
 * here see `Kysely<ComplianceDatabase>`.
 */
export interface HostKernelHistoryTable {
  host_id: string;
  /** 1, 2, ... per host, in the order kernels were seen. */
  seq: number;
  kernel_id: string;
  release: string;
  proc_version: string;
  /** When the host booted that kernel, as far as check-ins tell (boot time from uptime). */
  first_seen: string;
  last_seen: string;
}

export interface HostLevelHistoryTable {
  host_id: string;
  seq: number;
  kernel_id: string;
  level: number;
  /** JSON array of the CVE ids the level's manifest lists ([] for level 0 or an unknown level). */
  cves_json: string;
  from_at: string;
  /** Null while the host stays at this level. */
  to_at: string | null;
}

export interface TripwireEventsTable {
  id: string;
  host_id: string;
  cve: string;
  fix_id: string | null;
  level: number | null;
  pid: number;
  uid: number;
  comm: string;
  kernel_time: number | null;
  at: string;
  received_at: string;
  message: string | null;
}

export interface ComplianceSettingsTable {
  key: string;
  value_json: string;
  updated_at: string;
}

/** The columns of the shared hosts/patches tables that compliance reads. */
export interface ComplianceHostsView {
  id: string;
  hostname: string;
  kernel_id: string;
  release: string;
  kernel_json: string;
  applied_level: number;
  enrolled_at: string;
  last_checkin_at: string | null;
  revoked_at: string | null;
}

export interface CompliancePatchesView {
  kernel_id: string;
  level: number;
  name: string;
  manifest_json: string;
  published_at: string | null;
}

export interface ComplianceDatabase {
  host_kernel_history: HostKernelHistoryTable;
  host_level_history: HostLevelHistoryTable;
  tripwire_events: TripwireEventsTable;
  compliance_settings: ComplianceSettingsTable;
  hosts: ComplianceHostsView;
  patches: CompliancePatchesView;
}
