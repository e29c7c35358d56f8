// bench/report-checkin: the server's CPU for the check-in that reports a new
// level, and for a steady check-in, in one process through Fastify's inject
// (no sockets, no other process on the cores), so that a cut to the check-in
// path shows without the fleet benchmark's simulation around it.
//
//   npm run bench -- report-checkin [--hosts 2000] [--steady-rounds 3] [--prof FILE.cpuprofile]
//
// Prints one JSON document. Inject builds its own request and response
// objects, so both figures include some of its cost; compare runs of this
// bench with each other, not with the fleet benchmark's per-host figures.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import type { CheckinRequest } from '../packages/protocol/src/index.ts';
import { startFleetHarness } from '../packages/server/test/fleet-helpers.ts';
import { kernelIdentity } from '../packages/server/test/helpers.ts';
import { int } from './args.ts';

const { values: args } = parseArgs({
  options: {
    hosts: { type: 'string', default: '2000' },
    'steady-rounds': { type: 'string', default: '3' },
    prof: { type: 'string' },
  },
});
const hosts = int('hosts', args.hosts, 1, 100_000);
const rounds = int('steady-rounds', args['steady-rounds'], 0, 100);

const h = await startFleetHarness({ config: { enrollBurst: 100_000, enrollPerMinute: 1_000_000 } });
try {
  const tokens: string[] = [];
  for (let i = 0; i < hosts; i++) tokens.push((await h.enroll(`bench-${i}`)).token);
  for (const t of tokens) await h.checkin(t);
  await h.publish(1);
  // What an agent sends once it has applied level 1, then repeats while nothing changes.
  const bodies = tokens.map((_, i) =>
    JSON.stringify({
      kernel: kernelIdentity(),
      appliedLevel: 1,
      state: 'patched',
      agentVersion: '0.2.0',
      uptimeSec: 200 + i,
      lastApply: {
        action: 'apply',
        fromLevel: 0,
        toLevel: 1,
        ok: true,
        durationMs: 1200,
        at: new Date(Date.now() - 60_000 + i).toISOString(),
      },
      patchState: { module: 'livegraft_bench_l1', enabled: true, transition: false },
    } satisfies CheckinRequest),
  );
  const send = async (i: number): Promise<void> => {
    const res = await h.server.app.inject({
      method: 'POST',
      url: '/api/v1/hosts/checkin',
      headers: { authorization: `Bearer ${tokens[i]}`, 'content-type': 'application/json' },
      payload: bodies[i],
    });
    if (res.statusCode !== 200) throw new Error(`check-in answered ${res.statusCode}: ${res.body}`);
  };
  const cpuMsPer = async (n: number, each: (k: number) => Promise<void>): Promise<number> => {
    const before = process.cpuUsage();
    for (let k = 0; k < n; k++) await each(k);
    const used = process.cpuUsage(before);
    return Number(((used.user + used.system) / 1000 / n).toFixed(3));
  };

  const session = args.prof === undefined ? undefined : new Session();
  if (session !== undefined) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
  }
  const reportCpuMs = await cpuMsPer(hosts, send);
  if (session !== undefined && args.prof !== undefined) {
    const { profile } = await session.post('Profiler.stop');
    writeFileSync(args.prof, JSON.stringify(profile));
    session.disconnect();
  }
  const steadyCpuMs = rounds === 0 ? null : await cpuMsPer(rounds * hosts, (k) => send(k % hosts));
  console.log(
    JSON.stringify({
      bench: 'report-checkin',
      at: new Date().toISOString(),
      hosts,
      steadyRounds: rounds,
      reportCpuMsPerCheckin: reportCpuMs,
      steadyCpuMsPerCheckin: steadyCpuMs,
      loadAvg: loadavg().map((l) => Number(l.toFixed(2))),
    }),
  );
} finally {
  await h.stop();
}
