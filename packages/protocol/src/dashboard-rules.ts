import type { HostState } from './api.ts';
import type { ApiRole } from './fleet.ts';
import type { DesiredLevel } from './delivery.ts';

/**
 * Rules the dashboard and the server share: which bucket a host is in, and
 * which parts of the API a role may read. Plain functions without runtime
 * imports, so the dashboard bundle can use them (subpath
 * `@livegraft/protocol/dashboard-rules`).
 */

/**
 * Every host is in exactly one bucket, checked in this order: a host that
 * stopped checking in is stale whatever it last said; then failures, hosts
 * asking for a person, hosts on a kernel the server has no live patch for,
 * hosts not yet on the level the server wants, hosts kept below their feed's
 * level by their ignore-list, and the rest.
 */
export const HOST_STATUSES = [
  'stale',
  'failed',
  'attention',
  'unsupported',
  'behind',
  'held',
  'patched',
  'unpatched',
] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

export const HOST_STATUS_LABEL: Record<HostStatus, string> = {
  stale: 'Stale',
  failed: 'Failed',
  attention: 'Needs attention',
  unsupported: 'Unsupported kernel',
  behind: 'Behind',
  held: 'Held',
  patched: 'Patched',
  unpatched: 'No patch',
};

export const HOST_STATUS_HELP: Record<HostStatus, string> = {
  stale: 'missed two check-ins (or never checked in)',
  failed: 'the agent reports an error',
  attention: 'the agent stopped and asks for a person (quarantine, kill switch, refused module)',
  unsupported: 'unsupported kernel: the server has no live patch for the kernel build it runs',
  behind: 'not yet on the level its feed, pin or rollback wants',
  held: 'kept below its feed’s level by its ignore-list',
  patched: 'running the level it should',
  unpatched: 'no live patch wanted for its kernel',
};

/** A host that missed this many check-ins is stale. */
export const STALE_AFTER_CHECKINS = 2;

/** What the status needs of a host record. */
export interface HostStatusInput {
  lastCheckinAt: string | null;
  state: HostState;
  appliedLevel: number;
  desired?: DesiredLevel | null | undefined;
}

export function hostStatus(h: HostStatusInput, checkinIntervalSec: number, now = Date.now()): HostStatus {
  const last = h.lastCheckinAt === null ? NaN : Date.parse(h.lastCheckinAt);
  if (Number.isNaN(last) || now - last > STALE_AFTER_CHECKINS * checkinIntervalSec * 1000) return 'stale';
  if (h.state === 'error') return 'failed';
  if (h.state === 'needs-attention') return 'attention';
  if (h.state === 'unsupported') return 'unsupported';
  const wanted = h.desired?.level;
  if (wanted !== undefined && wanted !== h.appliedLevel) return 'behind';
  if ((h.desired?.ignoredFixes ?? []).length > 0) return 'held';
  return h.appliedLevel > 0 ? 'patched' : 'unpatched';
}

export function countHostStatuses(
  hosts: Iterable<HostStatusInput>,
  checkinIntervalSec: number,
  now = Date.now(),
): Record<HostStatus, number> {
  const out = Object.fromEntries(HOST_STATUSES.map((s) => [s, 0])) as Record<HostStatus, number>;
  for (const h of hosts) out[hostStatus(h, checkinIntervalSec, now)]++;
  return out;
}

/**
 * What the dashboard reads, by the role the server asks for it:
 * fleet (hosts, feeds, patches, halts, pins, audit, activity), compliance
 * (exposure, CVEs, SLA windows, reports, tripwires, VEX, policy), pipeline
 * (fixes, jobs, coverage), and tokens (token and registration-key lists).
 */
export type ReadSection = 'fleet' | 'compliance' | 'pipeline' | 'tokens';
export const READ_ROLE: Readonly<Record<ReadSection, ApiRole>> = {
  fleet: 'viewer',
  compliance: 'viewer',
  pipeline: 'viewer',
  tokens: 'admin',
};

const RANK: Record<ApiRole, number> = { worker: 0, viewer: 1, operator: 2, admin: 3 };

/** Whether a role may read a section; workers read none of them. */
export function mayRead(role: ApiRole, section: ReadSection): boolean {
  return role !== 'worker' && RANK[role] >= RANK[READ_ROLE[section]];
}

/** Whether a role may change rollouts (promote, pin, halt, roll back). */
export function mayOperate(role: ApiRole): boolean {
  return role === 'operator' || role === 'admin';
}
