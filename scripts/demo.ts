// `npm run demo`: real CVEs closed live, narrated. The patch factory turns
// upstream fixes from the catalogue into a cumulative livepatch module for an
// older Debian kernel build (6.1.0-50 while the archive has it), the server
// publishes it, and the agent in a QEMU guest of that exact kernel applies it
// while a workload runs. Each CVE's trigger is shown before and after; a fix
// in a module takes effect when the module loads later; the guest reboots with
// the level applied and the agent re-applies it before the network is up
// (shown from the kernel log's own times); at the end the agent unloads it.
import { join } from 'node:path';
import { bootOrder, bootOrderLine } from '../test/vm/lib/boot-order.ts';
import { CATALOGUE, createFactoryWorld } from '../test/vm/lib/factory-world.ts';
import { agent, startWorkload, viewKernel, workloadCounts } from '../test/vm/lib/probe.ts';
import { runTriggers } from '../test/vm/lib/triggers.ts';
import { rootPinArg } from '../test/vm/lib/root-pin.ts';

const bold = (s: string): string => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (s: string): void => console.log(`\n${bold(`== ${s}`)}`);
const show = (label: string, value: string): void => console.log(`   ${label.padEnd(30)} ${value}`);

/** vmlinux fixes whose triggers run as a user or root, and one module fix loaded later. */
const KERNEL_FIXES = ['CVE-2026-63824', 'CVE-2026-68386', 'CVE-2026-46266'];
const MODULE_FIX = 'CVE-2026-63829';
const MODULE = 'ip_gre';

function applyMs(json: unknown, fallback: number): number {
  const j = json as { apply?: { durationMs?: number }; durationMs?: number; result?: { durationMs?: number } };
  return Math.round(j?.apply?.durationMs ?? j?.durationMs ?? j?.result?.durationMs ?? fallback);
}

async function main(): Promise<void> {
  step('Building live patches from upstream fixes (first run: fetches and prepares the Debian kernel build)');
  const t0 = Date.now();
  const ids = [...KERNEL_FIXES, MODULE_FIX];
  const w = await createFactoryWorld('demo', { 1: ids }, 1);
  try {
    const g = w.guest;
    const level = w.levels.get(1);
    if (!level) throw new Error('level 1 was not built');
    const m = level.manifest;
    show('kernel build', `${w.release} (${(await g.sh('uname -v')).trim()})`);
    show('built in', `${((w.buildMs.get(1) ?? 0) / 1000).toFixed(0)} s`);
    show('module', `${m.name}.ko, ${m.module.size} bytes, sha256 ${m.module.sha256.slice(0, 16)}...`);
    for (const f of m.fixes) {
      const c = f.commits?.[0];
      show(f.id, `${c?.id ? `${c.id.slice(0, 12)} ` : ''}${c?.subject ?? f.title}`);
      show('', `replaces ${f.functions.map((fn) => `${fn.object}:${fn.name}`).join(', ')}`);
    }
    show('guest ready after', `${((Date.now() - t0) / 1000).toFixed(0)} s`);

    step('Before patching: each CVE trigger on the running kernel');
    const dirs = (list: string[]): string[] => list.map((id) => join(CATALOGUE, id));
    for (const [id, v] of await runTriggers(g, dirs(KERNEL_FIXES))) show(id, v);
    show(`${MODULE} module loaded`, (await g.run(`grep -q "^${MODULE} " /proc/modules`)).code === 0 ? 'yes' : 'no');
    const bootId = (await viewKernel(g)).bootId;

    step('Enrolling the guest; a workload reads /proc in a loop throughout');
    const en = await agent(
      g,
      `enroll --server http://10.0.2.100 --key ${w.server.registrationKey} ${await rootPinArg(w.server)}`,
    );
    if (en.code !== 0) throw new Error(`enroll failed: ${en.stderr}`);
    await startWorkload(g);
    show('agent check (exit 2 = update)', String((await agent(g, 'check')).code));

    step('Applying the live patch (livegraft-agent update)');
    const t = Date.now();
    const up = await agent(g, 'update --json');
    if (up.code !== 0) throw new Error(`update failed: ${up.stderr}`);
    const applyTime = applyMs(up.json, Date.now() - t);
    show('applied in', `${applyTime} ms (agent), ${Date.now() - t} ms wall clock with Node start-up under TCG`);
    show('effective kernel', (await agent(g, 'uname')).stdout.trim());

    step('After patching: the same triggers');
    for (const [id, v] of await runTriggers(g, dirs(KERNEL_FIXES))) show(id, v);

    step(`A module fix: ${MODULE_FIX} patches ${MODULE}, which is loaded only now`);
    for (const [id, v] of await runTriggers(g, dirs([MODULE_FIX]))) show(id, v);
    show(`${MODULE} patched as it loaded`, await g.sh(`cat /sys/kernel/livepatch/${m.name}/${MODULE}/patched`));

    step('What the host reports (livegraft-agent status)');
    console.log((await agent(g, 'status')).stdout.replace(/^/gm, '   '));

    const c = await workloadCounts(g);
    show('workload reads ok / failed', `${c.ok} / ${c.fail}`);
    show('boot_id unchanged', String((await viewKernel(g)).bootId === bootId));

    step(`Reboot with level ${m.level} applied: the agent re-applies the cached level before the network is up`);
    const tr = Date.now();
    await g.reboot();
    const rebootMs = Date.now() - tr;
    const after = await viewKernel(g);
    show('boot_id changed (a real boot)', String(after.bootId !== bootId));
    show('boot-time re-apply', (await g.sh('cat /tmp/boot.log')).split('\n').pop() ?? '');
    const lp = after.patches.get(m.name);
    show('/sys/kernel/livepatch', [...after.patches.keys()].join(' ') || '(empty)');
    show(`  ${m.name}`, lp === undefined ? 'absent' : `enabled ${lp.enabled}, transition ${lp.transition}`);
    if (lp?.enabled !== '1') throw new Error(`level ${m.level} is not live after the reboot`);
    const order = bootOrder(await g.sh('dmesg | grep -E "livepatch|eth0" || true'), m.name);
    if (order === undefined) throw new Error(`the kernel log of the new boot does not show ${m.name} going live`);
    show('kernel log: live', `[${order.liveAt.toFixed(6)}] ${order.liveLine}`);
    show(
      'kernel log: network',
      order.netLine === null ? '(no link-up line)' : `[${order.netUpAt?.toFixed(6)}] ${order.netLine}`,
    );
    if (order.netUpAt === null) throw new Error('the kernel log of the new boot does not show eth0 coming up');
    if (order.liveAt >= order.netUpAt) {
      throw new Error(`level ${m.level} went live at ${order.liveAt} s, after the network (${order.netUpAt} s)`);
    }
    const bootLine = bootOrderLine(m.level, m.name, { ...order, netUpAt: order.netUpAt });
    console.log(`   ${bootLine}`);
    for (const [id, v] of await runTriggers(g, dirs(KERNEL_FIXES))) show(id, v);

    step('Unloading at the end (livegraft-agent unload): the flaws are back');
    const un = await agent(g, 'unload --json');
    if (un.code !== 0) throw new Error(`unload failed: ${un.stderr}`);
    for (const [id, v] of await runTriggers(g, dirs([...KERNEL_FIXES, MODULE_FIX]))) show(id, v);
    show('/sys/kernel/livepatch', [...(await viewKernel(g)).patches.keys()].join(' ') || '(empty)');

    step('Summary');
    show('live apply', `${applyTime} ms, no downtime`);
    show('reboot of the same VM', `${rebootMs} ms to a shell, every process restarted`);
    show(
      'boot-time re-apply',
      `level ${m.level} live ${(order.netUpAt - order.liveAt).toFixed(2)} s before eth0 came up`,
    );
  } finally {
    await w.close();
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${(err as Error).stack ?? String(err)}`);
  process.exitCode = 1;
});
