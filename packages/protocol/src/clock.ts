/** Beyond this difference from the server's clock, the agent warns (TUF expiry and ages depend on it). */
export const CLOCK_SKEW_WARN_SEC = 300;
/** Answers are timed to the second and travel a while: smaller differences are noise. */
const SKEW_NOISE_SEC = 60;

/**
 * Local clock minus the server's, in seconds, from an HTTP Date header
 * received at `localMs`; undefined without a usable header.
 */
export function clockSkewSec(localMs: number, dateHeader: string | null | undefined): number | undefined {
  if (typeof dateHeader !== 'string' || dateHeader.length > 64) return undefined;
  const server = Date.parse(dateHeader);
  if (!Number.isFinite(server)) return undefined;
  const skew = Math.round((localMs - server) / 1000);
  return Math.abs(skew) < SKEW_NOISE_SEC ? 0 : skew;
}

/** "3 d 4 h", "12 min", "40 s". */
export function humanDuration(sec: number): string {
  const s = Math.abs(Math.round(sec));
  if (s >= 86_400) return `${Math.floor(s / 86_400)} d ${Math.floor((s % 86_400) / 3600)} h`;
  if (s >= 3600) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  if (s >= 60) return `${Math.floor(s / 60)} min`;
  return `${s} s`;
}

/** A warning for a clock that differs from the server's by more than CLOCK_SKEW_WARN_SEC, else undefined. */
export function skewWarning(skewSec: number | undefined): string | undefined {
  if (skewSec === undefined || Math.abs(skewSec) <= CLOCK_SKEW_WARN_SEC) return undefined;
  return (
    `this host's clock is ${humanDuration(skewSec)} ${skewSec > 0 ? 'ahead of' : 'behind'} the server's ` +
    '(its Date header); check the clock: signed metadata expiry and check ages depend on it'
  );
}
