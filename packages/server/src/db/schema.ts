import type { FleetTables, HostFleetColumns } from './fleet-schema.ts';

/**
 * Table shapes as Kysely sees them. Timestamps are ISO-8601 text and JSON
 * columns are text, so the same schema runs on SQLite and PostgreSQL.
 */
export interface PatchesTable {
  kernel_id: string;
  level: number;
  name: string;
  release: string;
  /** The manifest as published, canonical JSON (sorted keys). */
  manifest_json: string;
  module_sha256: string;
  size: number;
  created_at: string;
  published_at: string | null;
}

export interface HostsTable extends HostFleetColumns {
  id: string;
  hostname: string;
  /** sha256 (hex) of the host's bearer token; the token itself is never stored. */
  token_hash: string;
  kernel_id: string;
  release: string;
  kernel_json: string;
  applied_level: number;
  state: string;
  last_error: string | null;
  last_apply_json: string | null;
  agent_version: string;
  uptime_sec: number | null;
  clock_skew_sec: number | null;
  enrolled_at: string;
  last_checkin_at: string | null;
}

export interface Database extends FleetTables {
  patches: PatchesTable;
  hosts: HostsTable;
}
