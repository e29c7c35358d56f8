// bench/fleet-server-probe: loaded into the server process by bench/fleet.ts
// (`node --import ./bench/fleet-server-probe.ts ...`), never by a deployed
// server. It splits the process's own CPU counter (process.cpuUsage(), user +
// system) by the kind of request that was being served, and answers the
// bench over the IPC channel. It can also CPU-profile a window on request.
//
// Attribution ("processor sharing"): at every request start and every
// response close, the main thread's busy time since the previous such event
// (event-loop utilisation: time not spent waiting for I/O) is shared among
// the requests in flight during that interval, in proportion to how many of
// each kind were in flight. Busy time while no host request is in flight
// goes to `background` (the pushed event written to every stream, batched
// writes, timers). The bench then divides the process's CPU counter between
// the kinds in proportion to their busy time, so the kinds always add up to
// the counter. Push streams are long-lived and never count as in flight;
// opening one counts as `pushConnect`. The busy-time clock is read from
// user space; reading the CPU counter itself at every event cost a fifth of
// the server's CPU on this machine.
import diagnostics from 'node:diagnostics_channel';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { Session } from 'node:inspector/promises';
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const KINDS = [
  'checkin',
  'report',
  'tufMetadata',
  'module',
  'pushConnect',
  'admin',
  'other',
  'background',
] as const;
export type Kind = (typeof KINDS)[number];

export type ProbeCommand =
  | { probe: 'read' }
  | { probe: 'checkin-kind'; kind: 'checkin' | 'report' }
  | { probe: 'profile-start' }
  | { probe: 'profile-stop'; file: string };

export interface ProbeReading {
  probe: 'reading';
  /** Cumulative main-thread busy milliseconds per kind since the server started (shares, not CPU). */
  busyMs: Record<Kind, number>;
  /** Cumulative requests started per kind. */
  requests: Record<Kind, number>;
  /** process.cpuUsage() at the reading, user + system microseconds. */
  totalUs: number;
}

const zero = (): Record<Kind, number> => Object.fromEntries(KINDS.map((k) => [k, 0])) as Record<Kind, number>;
const busyMs = zero();
const requests = zero();
const inFlight = zero();
let inFlightTotal = 0;
let checkinKind: 'checkin' | 'report' = 'checkin';

const used = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};
const busy = (): number => performance.eventLoopUtilization().active;
let last = busy();
/** With LIVEGRAFT_BENCH_SPLIT=0 only requests are counted (the total without the split's own work). */
const split = process.env['LIVEGRAFT_BENCH_SPLIT'] !== '0';

/** Shares the main thread's busy time since the last event among what was in flight. */
function settle(): void {
  if (!split) return;
  const now = busy();
  const d = now - last;
  last = now;
  if (inFlightTotal === 0) {
    busyMs.background += d;
    return;
  }
  for (const k of KINDS) {
    const n = inFlight[k];
    if (n > 0) busyMs[k] += (d * n) / inFlightTotal;
  }
}

function kindOf(req: IncomingMessage): Kind | 'stream' {
  const url = req.url ?? '';
  if (url.startsWith('/tuf/metadata/')) return 'tufMetadata';
  if (url.startsWith('/tuf/targets/')) return 'module';
  if (url.includes('/events/stream')) return 'stream';
  if (req.method === 'POST' && url.startsWith('/api/v1/hosts/checkin')) return checkinKind;
  if ((req.headers.authorization ?? '').startsWith('Bearer bench-admin-')) return 'admin';
  return 'other';
}

diagnostics.subscribe('http.server.request.start', (message) => {
  const { request, response } = message as { request: IncomingMessage; response: ServerResponse };
  settle();
  const kind = kindOf(request);
  if (kind === 'stream') {
    requests.pushConnect++;
    return;
  }
  requests[kind]++;
  if (!split) return;
  inFlight[kind]++;
  inFlightTotal++;
  response.once('close', () => {
    settle();
    inFlight[kind]--;
    inFlightTotal--;
  });
});

let session: Session | undefined;

process.on('message', (m: ProbeCommand) => {
  const answer = (x: unknown): void => {
    process.send?.(x);
  };
  switch (m.probe) {
    case 'read':
      settle();
      answer({
        probe: 'reading',
        busyMs: { ...busyMs },
        requests: { ...requests },
        totalUs: used(),
      } satisfies ProbeReading);
      return;
    case 'checkin-kind':
      checkinKind = m.kind;
      answer({ probe: 'ok' });
      return;
    case 'profile-start':
      void (async () => {
        session = new Session();
        session.connect();
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
        answer({ probe: 'ok' });
      })();
      return;
    case 'profile-stop':
      void (async () => {
        if (session !== undefined) {
          const { profile } = await session.post('Profiler.stop');
          writeFileSync(m.file, JSON.stringify(profile));
          session.disconnect();
          session = undefined;
        }
        answer({ probe: 'ok', file: join(m.file) });
      })();
      return;
  }
});
