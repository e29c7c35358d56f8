import type { Generated } from 'kysely';

/**
 * Fleet tables (migration 0003). Booleans are integers (0/1) and times are
 * ISO-8601 text so SQLite and PostgreSQL store the same values.
 */
export interface FeedsTable {
  name: string;
  description: string;
  promotes_to: string | null;
  auto_publish: number;
  /** PromotionRule as JSON, or null for "manual promotion only". */
  promotion_json: string | null;
  /** MaintenanceWindow[] as JSON; [] = any time. */
  windows_json: string;
  created_at: string;
  /** 1: only validated levels enter (migration 0040; existing feeds 0). */
  require_validated: Generated<number>;
}

/** Whether a stored level may enter a gated feed (migration 0040). */
export interface LevelValidationsTable {
  kernel_id: string;
  level: number;
  /** 'passed' or 'failed' (a VM validation), or 'override' (an operator's audited decision). */
  result: string;
  /** ValidationSummary JSON (signed into the TUF target); null for an override. */
  summary_json: string | null;
  reason: string | null;
  actor: string;
  at: string;
}

export interface FeedLevelsTable {
  feed: string;
  kernel_id: string;
  level: number;
  previous_level: number;
  source: string;
  allow_downgrade: number;
  set_at: string;
  /** When the promotion rule's host condition was first seen holding; null while it does not. */
  healthy_since: string | null;
}

export interface LevelHaltsTable {
  kernel_id: string;
  level: number;
  reason: string;
  host_id: string | null;
  at: string;
}

export interface PinsTable {
  scope: string;
  subject: string;
  /** The kernel id of a level pin, '*' for a cut-off pin (any kernel). */
  kernel_key: string;
  level: number | null;
  cutoff: string | null;
  allow_downgrade: number;
  reason: string;
  created_at: string;
  created_by: string;
}

export interface ApiTokensTable {
  id: string;
  name: string;
  role: string;
  token_hash: string;
  created_at: string;
  created_by: string;
  revoked_at: string | null;
  /** Migration 0050; null: never expires. */
  expires_at: string | null;
}

export interface RegistrationKeysTable {
  id: string;
  name: string;
  feed: string;
  tags_json: string;
  key_hash: string;
  created_at: string;
  revoked_at: string | null;
}

export interface AuditLogTable {
  id: string;
  at: string;
  actor_id: string;
  actor_name: string;
  actor_role: string;
  ip: string | null;
  action: string;
  target: string;
  details_json: string;
}

/** Columns migration 0003 adds to `hosts`. */
export interface HostFleetColumns {
  feed: Generated<string>;
  /** Tags set by the registration key or an operator. */
  tags_json: Generated<string>;
  /** Tags the agent reports at check-in. */
  reported_tags_json: Generated<string>;
  auto_update: Generated<number>;
  revoked_at: string | null;
  blocking_json: string | null;
  patch_state_json: string | null;
  kernel_events_json: string | null;
  /** Fix ids the host is never offered (JSON string[]); migration 0030. */
  ignore_json: Generated<string>;
  /** Fingerprint of the last stored check-in report minus its uptime; migration 0031. */
  report_fp: string | null;
}

export interface FleetTables {
  feeds: FeedsTable;
  feed_levels: FeedLevelsTable;
  level_halts: LevelHaltsTable;
  pins: PinsTable;
  api_tokens: ApiTokensTable;
  registration_keys: RegistrationKeysTable;
  audit_log: AuditLogTable;
  level_validations: LevelValidationsTable;
}
