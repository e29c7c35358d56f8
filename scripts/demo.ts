// `npm run demo`: the whole story on a real kernel, narrated. It builds the
// example fixes, starts the server, boots the current Debian kernel in QEMU
// with the agent, and patches, upgrades, rolls back and unloads live while a
// workload keeps running, then reboots to show re-apply from the local cache.
import { createWorld, publish } from '../test/vm/lib/world.ts';
import { agent, startWorkload, viewKernel, workloadCounts } from '../test/vm/lib/probe.ts';

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string): void => console.log(`\n${bold(`== ${s}`)}`);
const show = (label: string, value: string): void => console.log(`   ${label.padEnd(26)} ${value}`);

interface Timing {
  step: string;
  ms: number;
}
const timings: Timing[] = [];

function applyMs(json: unknown, fallback: number): number {
  const j = json as {
    lastApply?: { durationMs?: number };
    result?: { durationMs?: number };
    apply?: { durationMs?: number };
    durationMs?: number;
  };
  return Math.round(
    j?.apply?.durationMs ?? j?.durationMs ?? j?.result?.durationMs ?? j?.lastApply?.durationMs ?? fallback,
  );
}

async function main(): Promise<void> {
  step('Preparing: Debian kernel image, example fixes built at levels 1 and 2, patch server');
  const t0 = Date.now();
  const w = await createWorld('demo');
  try {
    const g = w.guest;
    show('kernel', w.kernel.release);
    show('server', w.server.url);
    for (const p of [w.level1, w.level2]) {
      show(`level ${p.manifest.level} module`, `${p.manifest.name}.ko (${p.manifest.module.size} bytes)`);
      for (const f of p.manifest.fixes) show('', `${f.id}: ${f.title}`);
    }
    show(
      'guest booted in',
      `${(g.bootMs / 1000).toFixed(1)} s (ready after ${((Date.now() - t0) / 1000).toFixed(0)} s)`,
    );

    step('Before patching');
    let v = await viewKernel(g);
    const bootId = v.bootId;
    show('/proc/cmdline', v.cmdline);
    show('/proc/loadavg last PID', v.lastPid);
    show('/sys/kernel/livepatch', [...v.patches.keys()].join(' ') || '(empty)');
    show('boot_id', bootId);

    step('Enrolling the guest and starting a workload that reads both /proc files in a loop');
    const en = await agent(g, `enroll --server http://10.0.2.100 --key ${w.server.registrationKey}`);
    if (en.code !== 0) throw new Error(`enroll failed: ${en.stderr}`);
    await startWorkload(g);
    show('agent check (exit 2 = update available)', String((await agent(g, 'check')).code));

    const live = async (label: string, args: string): Promise<void> => {
      step(label);
      const t = Date.now();
      const r = await agent(g, args);
      const wall = Date.now() - t;
      if (r.code !== 0) throw new Error(`livegraft-agent ${args} failed (${r.code}): ${r.stderr}`);
      timings.push({ step: label, ms: applyMs(r.json, wall) });
      v = await viewKernel(g);
      show('/proc/cmdline', v.cmdline);
      show('/proc/loadavg last PID', v.lastPid);
      show('/sys/kernel/livepatch', [...v.patches].map(([n, s]) => `${n} enabled=${s.enabled}`).join(' ') || '(empty)');
      show('livegraft modules loaded', v.modules.join(' ') || '(none)');
      show('effective kernel', (await agent(g, 'uname')).stdout.trim());
      show('time', `${timings.at(-1)?.ms} ms (agent), ${wall} ms wall clock including Node start-up under TCG`);
    };

    await live('Level 1: redact secrets in /proc/cmdline (livegraft-agent update)', 'update --json');
    await publish(w.server, w.level2);
    await live('Level 2 published: cumulative, atomic replace (livegraft-agent update)', 'update --json');
    await live('Roll back to level 1 (livegraft-agent rollback --to 1)', 'rollback --to 1 --json');
    await live('Unload everything (livegraft-agent unload)', 'unload --json');

    step('Refusals: a module for another kernel build, and a corrupted module');
    for (const m of [w.bad.otherKernel, w.bad.corrupt]) {
      const r = await agent(g, `apply ${m}`);
      show(m.split('/')[2] ?? m, `exit ${r.code}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
    }

    step('The workload, throughout');
    const c = await workloadCounts(g);
    v = await viewKernel(g);
    show('successful reads', String(c.ok));
    show('failed reads', String(c.fail));
    show('boot_id unchanged', String(v.bootId === bootId));

    step('Reboot: the agent re-applies the cached level before the network is up');
    await agent(g, 'update --json');
    const tr = Date.now();
    await g.reboot();
    const rebootMs = Date.now() - tr;
    v = await viewKernel(g);
    show('boot-time re-apply', (await g.sh('cat /tmp/boot.log')).split('\n').pop() ?? '');
    show('/sys/kernel/livepatch', [...v.patches.keys()].join(' '));
    show('/proc/cmdline', v.cmdline);

    step('Summary: live patch steps against a reboot of the same VM');
    for (const t of timings) show(t.step.split(' (')[0] ?? t.step, `${t.ms} ms`);
    show('reboot (to shell)', `${rebootMs} ms`);
    const worst = Math.max(...timings.map((t) => t.ms));
    show('slowest live step / reboot', `${((worst / rebootMs) * 100).toFixed(0)}% — and no downtime`);
  } finally {
    await w.close();
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
