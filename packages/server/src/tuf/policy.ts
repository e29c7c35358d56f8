import type { TufRole } from '@livegraft/protocol';

const DAY_SEC = 24 * 3600;

/** How long each role's metadata is valid when signed. */
export const DEFAULT_EXPIRY_SEC: Readonly<Record<TufRole, number>> = {
  root: 365 * DAY_SEC,
  targets: 90 * DAY_SEC,
  snapshot: 7 * DAY_SEC,
  timestamp: DAY_SEC,
};
/** Shortest lifetime we accept: the refresh job must be able to keep up with it. */
export const MIN_EXPIRY_SEC = 60;
export const MAX_EXPIRY_SEC = 5 * 365 * DAY_SEC;

/** The refresh job's period; it re-signs a role once less than half of its lifetime remains. */
export const DEFAULT_REFRESH_INTERVAL_MS = 10 * 60_000;
export const MIN_REFRESH_INTERVAL_MS = 1000;
export const MAX_REFRESH_INTERVAL_MS = 3600_000;

/** Superseded targets/snapshot/timestamp versions kept for clients that are mid-update. */
export const KEEP_VERSIONS = 20;
/** Another server node writing the same version makes us re-read and retry, at most this often. */
export const MAX_SYNC_ATTEMPTS = 5;
/** An offline root this close to expiry is logged (once a day) so an admin re-signs it in time. */
export const ROOT_EXPIRY_WARNING_SEC = 30 * DAY_SEC;
export const ROOT_WARNING_EVERY_MS = DAY_SEC * 1000;

export function renewalDue(expires: string, lifetimeSec: number, now: Date): boolean {
  return Date.parse(expires) - now.getTime() < (lifetimeSec * 1000) / 2;
}
