import type { HostRecord } from '@livegraft/protocol';

/**
 * How the dashboard buckets hosts. Every host is in exactly one bucket,
 * checked in this order: a host that stopped checking in is stale whatever
 * it last said; then failures, then hosts asking for a person, then hosts
 * not yet on the level the server wants for them.
 */
export const HOST_STATUSES = ['stale', 'failed', 'attention', 'behind', 'patched', 'unpatched'] as const;
export type HostStatus = (typeof HOST_STATUSES)[number];

export const STATUS_LABEL: Record<HostStatus, string> = {
  stale: 'Stale',
  failed: 'Failed',
  attention: 'Needs attention',
  behind: 'Behind',
  patched: 'Patched',
  unpatched: 'No patch',
};

export const STATUS_HELP: Record<HostStatus, string> = {
  stale: 'missed two check-ins (or never checked in)',
  failed: 'the agent reports an error',
  attention: 'the agent stopped and asks for a person (quarantine, kill switch, refused module)',
  behind: 'not yet on the level its feed, pin or rollback wants',
  patched: 'running the level it should',
  unpatched: 'no live patch wanted or available for its kernel',
};

/** A host that missed this many check-ins is stale. */
export const STALE_AFTER_CHECKINS = 2;

export function hostStatus(h: HostRecord, checkinIntervalSec: number, now = Date.now()): HostStatus {
  const last = h.lastCheckinAt === null ? NaN : Date.parse(h.lastCheckinAt);
  if (Number.isNaN(last) || now - last > STALE_AFTER_CHECKINS * checkinIntervalSec * 1000) return 'stale';
  if (h.state === 'error') return 'failed';
  if (h.state === 'needs-attention') return 'attention';
  const wanted = h.desired?.level;
  if (wanted !== undefined && wanted !== h.appliedLevel) return 'behind';
  return h.appliedLevel > 0 ? 'patched' : 'unpatched';
}

export function countStatuses(hosts: HostRecord[], interval: number, now = Date.now()): Record<HostStatus, number> {
  const out = Object.fromEntries(HOST_STATUSES.map((s) => [s, 0])) as Record<HostStatus, number>;
  for (const h of hosts) out[hostStatus(h, interval, now)]++;
  return out;
}
