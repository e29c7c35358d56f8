import type { ExposureWindow, Severity, SlaPolicy, WindowClosedBy } from '@livegraft/protocol';
import type { ComplianceHost } from './exposure.ts';
import type { HostHistory, KernelSegment, LevelSegment } from './history.ts';

const DAY_MS = 86_400_000;

/** What the dataset says about one CVE affecting one kernel. */
export interface AffectingCve {
  severity: Severity;
  cvssScore: number | null;
  published: string | null;
}

/** CVEs affecting a kernel (by its /proc/version line or release), or undefined if it cannot be evaluated. */
export type AffectedOf = (kernel: KernelSegment) => ReadonlyMap<string, AffectingCve> | undefined;

export interface RawWindow {
  cve: string;
  info: AffectingCve;
  kernel: KernelSegment;
  start: number;
  end: number | null;
  closedBy: WindowClosedBy | null;
  fixedByLevel: number | null;
}

function segmentAt<T>(
  segments: readonly T[],
  t: number,
  from: (s: T) => number,
  to: (s: T) => number | null,
): T | undefined {
  let found: T | undefined;
  for (const s of segments) {
    const a = from(s);
    const b = to(s);
    if (a <= t && (b === null || t < b)) found = s;
  }
  return found;
}

/**
 * Exposure windows of one host from its kernel and level history: a window
 * opens when a CVE affects the running kernel and no live patch fixes it,
 * from max(CVE published, host first seen on that kernel), and closes when a
 * live patch with the CVE goes live or the host boots a kernel it does not
 * affect. Windows still open at `now` have end null.
 */
export function hostWindows(history: HostHistory, affectedOf: AffectedOf, now: Date): RawWindow[] {
  const nowMs = now.getTime();
  const kernels = history.kernels;
  const levels = history.levels;
  const times = new Set<number>();
  for (const k of kernels) times.add(Date.parse(k.firstSeen));
  for (const l of levels) {
    times.add(Date.parse(l.from));
    if (l.to !== null) times.add(Date.parse(l.to));
  }
  const sorted = [...times].filter((t) => Number.isFinite(t) && t <= nowMs).sort((a, b) => a - b);
  const open = new Map<string, RawWindow>();
  const out: RawWindow[] = [];

  const kernelAt = (t: number): KernelSegment | undefined =>
    segmentAt(
      kernels,
      t,
      (k) => Date.parse(k.firstSeen),
      () => null,
    );
  const levelAt = (t: number): LevelSegment | undefined =>
    segmentAt(
      levels,
      t,
      (l) => Date.parse(l.from),
      (l) => (l.to === null ? null : Date.parse(l.to)),
    );

  for (const t of sorted) {
    const kernel = kernelAt(t);
    const affecting = kernel === undefined ? undefined : affectedOf(kernel);
    const level = levelAt(t);
    const patched = new Set(level !== undefined && level.kernelId === kernel?.kernelId ? level.cves : []);
    for (const [cve, w] of open) {
      const affectedNow = affecting?.has(cve) === true;
      // Still exposed (possibly after booting another affected kernel): the window goes on.
      if (affectedNow && !patched.has(cve)) continue;
      open.delete(cve);
      w.end = t;
      w.closedBy = affectedNow ? 'live-patch' : 'kernel-upgrade';
      w.fixedByLevel = affectedNow ? (level?.level ?? null) : null;
      out.push(w);
    }
    if (kernel === undefined || affecting === undefined) continue;
    for (const [cve, info] of affecting) {
      if (open.has(cve) || patched.has(cve)) continue;
      open.set(cve, { cve, info, kernel, start: t, end: null, closedBy: null, fixedByLevel: null });
    }
  }
  out.push(...open.values());
  // A window counts from the CVE's publication; one that ended before it never existed.
  const result: RawWindow[] = [];
  for (const w of out) {
    const published = w.info.published === null ? NaN : Date.parse(w.info.published);
    const start = Number.isFinite(published) ? Math.max(w.start, published) : w.start;
    if (start >= (w.end ?? nowMs)) continue;
    result.push({ ...w, start });
  }
  return result;
}

/**
 * A host's history as recorded, or, for a host with none (enrolled before
 * history was kept, and not checked in since), one segment from its host
 * row: its kernel and applied level since it enrolled. The report and the
 * dashboard's compliance numbers both start from this.
 */
export async function historyOrHostRow(
  host: ComplianceHost,
  recorded: HostHistory | undefined,
  levelCves: (host: ComplianceHost) => Promise<string[]>,
): Promise<HostHistory> {
  if (recorded !== undefined && recorded.kernels.length > 0) return recorded;
  const since = host.enrolledAt;
  return {
    kernels: [
      {
        seq: 1,
        kernelId: host.kernelId,
        release: host.release,
        procVersion: host.procVersion,
        firstSeen: since,
        lastSeen: host.lastCheckinAt ?? since,
      },
    ],
    levels: [
      { seq: 1, kernelId: host.kernelId, level: host.appliedLevel, cves: await levelCves(host), from: since, to: null },
    ],
  };
}

/**
 * A window under the SLA policy (ms): when it is due (null: no SLA for its
 * severity), when it ends (now while open), and whether it breached.
 */
export function slaOf(
  w: RawWindow,
  policy: SlaPolicy,
  nowMs: number,
): { due: number | null; end: number; breached: boolean } {
  const slaDays = policy[w.info.severity];
  const end = w.end ?? nowMs;
  const due = slaDays === null ? null : w.start + slaDays * DAY_MS;
  return { due, end, breached: due !== null && end > due };
}

/** Due date, duration and breach of a window under the policy. */
export function applyPolicy(
  w: RawWindow,
  host: { id: string; hostname: string },
  policy: SlaPolicy,
  now: Date,
): ExposureWindow {
  const { due, end, breached } = slaOf(w, policy, now.getTime());
  return {
    hostId: host.id,
    hostname: host.hostname,
    cve: w.cve,
    severity: w.info.severity,
    cvssScore: w.info.cvssScore,
    release: w.kernel.release,
    kernelId: w.kernel.kernelId,
    start: new Date(w.start).toISOString(),
    end: w.end === null ? null : new Date(w.end).toISOString(),
    closedBy: w.closedBy,
    fixedByLevel: w.fixedByLevel,
    dueAt: due === null ? null : new Date(due).toISOString(),
    days: Math.round(((end - w.start) / DAY_MS) * 100) / 100,
    breached,
  };
}
