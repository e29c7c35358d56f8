// bench/apply-latency: how long a live patch takes on a real kernel compared
// with rebooting the same VM. Prints one JSON document.
//
//   npm run bench -- apply-latency [--runs N] [--reboots N]
import { parseArgs } from 'node:util';
import { createWorld, publish } from '../test/vm/lib/world.ts';
import { agent } from '../test/vm/lib/probe.ts';
import { rootPinArg } from '../test/vm/lib/root-pin.ts';

interface Stats {
  runs: number;
  minMs: number;
  medianMs: number;
  maxMs: number;
  samplesMs: number[];
}

function stats(samples: number[]): Stats {
  const s = [...samples].sort((a, b) => a - b);
  return {
    runs: s.length,
    minMs: s[0] ?? 0,
    medianMs: s[Math.floor(s.length / 2)] ?? 0,
    maxMs: s.at(-1) ?? 0,
    samplesMs: samples,
  };
}

function agentMs(json: unknown): number {
  const j = json as {
    durationMs?: number;
    result?: { durationMs?: number };
    apply?: { durationMs?: number };
    lastApply?: { durationMs?: number };
  };
  const ms = j?.apply?.durationMs ?? j?.durationMs ?? j?.result?.durationMs ?? j?.lastApply?.durationMs;
  if (typeof ms !== 'number') throw new Error(`agent output has no durationMs: ${JSON.stringify(json)}`);
  return Math.round(ms);
}

export async function applyLatency(runs: number, reboots: number): Promise<Record<string, unknown>> {
  const w = await createWorld('bench-apply');
  try {
    const g = w.guest;
    const en = await agent(
      g,
      `enroll --server http://10.0.2.100 --key ${w.server.registrationKey} ${await rootPinArg(w.server)}`,
    );
    if (en.code !== 0) throw new Error(en.stderr);
    const first = await agent(g, 'update --json');
    if (first.code !== 0) throw new Error(`update to level 1 failed: ${first.stderr}`);
    await publish(w.server, w.level2);
    const level2Cache = `/var/lib/livegraft/cache/${w.level2.manifest.kernel.id}/${w.level2.manifest.level}`;
    const fresh: number[] = [];
    const freshWall: number[] = [];
    const rollback: number[] = [];
    for (let i = 0; i < runs; i++) {
      await agent(g, 'unload');
      await g.sh(`rm -rf ${level2Cache}`);
      const t = Date.now();
      const up = await agent(g, 'update --json');
      freshWall.push(Date.now() - t);
      if (up.code !== 0) throw new Error(`update failed: ${up.stderr}`);
      fresh.push(agentMs(up.json));
      const rb = await agent(g, 'rollback --to 1 --json');
      if (rb.code !== 0) throw new Error(`rollback failed: ${rb.stderr}`);
      rollback.push(agentMs(rb.json));
      const back = await agent(g, 'update --json');
      if (back.code !== 0) throw new Error(`update failed: ${back.stderr}`);
    }
    const reboot: number[] = [];
    for (let i = 0; i < reboots; i++) {
      const t = Date.now();
      await g.reboot();
      reboot.push(Date.now() - t);
    }
    const apply = stats(fresh);
    const rebootStats = stats(reboot);
    return {
      bench: 'apply-latency',
      kernel: w.kernel.release,
      accel: 'tcg',
      apply: apply,
      applyWallIncludingNodeStart: stats(freshWall),
      rollbackFromCache: stats(rollback),
      reboot: rebootStats,
      rebootToApplyRatio: Number((rebootStats.medianMs / Math.max(1, apply.medianMs)).toFixed(1)),
      notes:
        'apply = agent-measured download + verify + insmod + transition complete + retired module removal; ' +
        'reboot = reboot -f until the guest shell answers again, including QEMU start, kernel boot and the boot-time re-apply',
    };
  } finally {
    await w.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { runs: { type: 'string', default: '5' }, reboots: { type: 'string', default: '3' } },
    allowPositionals: true,
  });
  const result = await applyLatency(Number(values.runs), Number(values.reboots));
  console.log(JSON.stringify(result, null, 2));
}
