// Real CVEs closed live on an older Debian kernel: the catalogue's upstream
// patches are built into cumulative livepatch modules by the patch factory,
// published to the real server and applied by the real agent in a QEMU guest
// of that exact kernel build. Each fix's trigger shows the flaw before, the
// fixed result after, and the flaw again after a rollback; module fixes take
// effect when their module is loaded after the patch.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { basename, join } from 'node:path';
import type { HostExposure } from '@livegraft/protocol';
import { api } from './lib/admin.ts';
import { CATALOGUE, createFactoryWorld, type FactoryWorld } from './lib/factory-world.ts';
import { agent, startWorkload, viewKernel, workloadCounts } from './lib/probe.ts';
import { catalogueDirs, runTriggers, type TriggerVerdict } from './lib/triggers.ts';
import { publish } from './lib/world.ts';
import { rootPinArg } from './lib/root-pin.ts';

/** Level 1 carries one fix, to roll back to; level 2 the whole catalogue. */
const FIRST = 'CVE-2026-63824';
const ids = catalogueDirs(CATALOGUE).map((d) => basename(d));

describe('the patch factory closes real CVEs live on an older Debian kernel', () => {
  let w: FactoryWorld;
  let hostId = '';
  /** Fixes whose code is in a module (from the built manifest), and their module names. */
  let moduleFixes = new Map<string, string[]>();
  let vmlinuxFixes: string[] = [];
  const dirs = (list: string[]): string[] => list.map((id) => join(CATALOGUE, id));
  const level2 = (): NonNullable<ReturnType<FactoryWorld['levels']['get']>> => {
    const p = w.levels.get(2);
    assert.ok(p);
    return p;
  };

  before(async () => {
    w = await createFactoryWorld('factory', { 1: [FIRST], 2: ids }, 1);
    console.log(
      `${w.release}: built level 1 in ${w.buildMs.get(1)} ms, level 2 (${ids.length} fixes) in ${w.buildMs.get(2)} ms`,
    );
    const m = level2().manifest;
    moduleFixes = new Map(
      m.fixes
        .map((f): [string, string[]] => [
          f.id,
          [...new Set(f.functions.map((fn) => fn.object).filter((o) => o !== 'vmlinux'))],
        ])
        .filter(([, mods]) => mods.length > 0),
    );
    vmlinuxFixes = m.fixes.map((f) => f.id).filter((id) => !moduleFixes.has(id));
    await startWorkload(w.guest);
  });
  after(async () => {
    await w?.close();
  });

  it('builds the catalogue from upstream patches, naming each upstream commit, with at least 3 module fixes', () => {
    const m = level2().manifest;
    const skipped = (m.skipped ?? []).map((s) => `${s.id}: ${s.reason}`);
    assert.deepEqual(skipped, [], `fixes left out of the level for ${w.release}`);
    assert.equal(m.fixes.length, ids.length);
    for (const f of m.fixes) {
      assert.equal(f.kind, 'patch', f.id);
      assert.ok((f.commits ?? []).length > 0 && f.commits?.[0]?.subject, `${f.id} names no upstream commit`);
      assert.ok(f.functions.length > 0, `${f.id} replaces no function`);
    }
    assert.ok(moduleFixes.size >= 3, `only ${moduleFixes.size} module fixes: ${[...moduleFixes.keys()].join(', ')}`);
  });

  it('the triggers show the flaws before the patch (modules not loaded yet)', async () => {
    const lsmod = await w.guest.sh('cat /proc/modules');
    for (const mods of moduleFixes.values())
      for (const mod of mods) assert.doesNotMatch(lsmod, new RegExp(`^${mod} `, 'm'));
    const before = await runTriggers(w.guest, dirs(vmlinuxFixes));
    console.log('before:', Object.fromEntries(before));
    const vulnerable = [...before].filter(([, v]) => v === 'VULNERABLE');
    assert.ok(
      vulnerable.length >= 5,
      `only ${vulnerable.length} triggers showed the flaw: ${JSON.stringify([...before])}`,
    );
    for (const [id, v] of before) assert.equal(v, 'VULNERABLE', id);
  });

  it('the agent applies level 1, then the cumulative level 2 replaces it live, with the workload running', async () => {
    const en = await agent(
      w.guest,
      `enroll --server http://10.0.2.100 --key ${w.server.registrationKey} ${await rootPinArg(w.server)}`,
    );
    assert.equal(en.code, 0, en.stderr);
    hostId = (await api<Array<{ id: string }>>(w.server, 'GET', '/api/v1/hosts'))[0]?.id ?? '';
    const one = await agent(w.guest, 'update', 600_000);
    assert.equal(one.code, 0, `${one.stdout}\n${one.stderr}`);
    await publish(w.server, level2());
    const t = Date.now();
    const up = await agent(w.guest, 'update', 600_000);
    assert.equal(up.code, 0, `${up.stdout}\n${up.stderr}`);
    console.log(`level 2 (${ids.length} real CVE fixes) applied in ${Date.now() - t} ms including Node start-up`);
    const view = await viewKernel(w.guest);
    const p = view.patches.get(level2().manifest.name);
    assert.equal(p?.enabled, '1');
    assert.equal(p?.transition, '0');
    assert.ok(!view.patches.has(w.levels.get(1)?.manifest.name ?? ''), 'level 1 was not replaced');
  });

  it('the same triggers give the fixed result after it', async () => {
    const res = await runTriggers(w.guest, dirs(vmlinuxFixes));
    console.log('after:', Object.fromEntries(res));
    for (const [id, v] of res) assert.equal(v, 'FIXED', id);
  });

  it('a module loaded after the patch is patched as it loads', async () => {
    const res = new Map<string, TriggerVerdict>();
    for (const [id, mods] of moduleFixes) {
      // The trigger itself loads the module (autoload through modprobe).
      const r = await runTriggers(w.guest, dirs([id]));
      for (const [k, v] of r) res.set(k, v);
      for (const mod of mods) {
        const patched = await w.guest.sh(`cat /sys/kernel/livepatch/${level2().manifest.name}/${mod}/patched`);
        assert.equal(patched, '1', `${mod} is loaded but not patched`);
      }
    }
    console.log('modules after:', Object.fromEntries(res));
    for (const [id, v] of res) assert.equal(v, 'FIXED', id);
  });

  it('status, the host VEX and the exposure list the CVEs as fixed live', async () => {
    // The report after an apply is best effort (a loaded guest can miss its bound);
    // a check-in makes sure the server knows the level it judges.
    await agent(w.guest, 'check');
    const st = await agent(w.guest, 'status --json');
    assert.equal(st.code, 0, st.stderr);
    const text = JSON.stringify(st.json);
    for (const id of ids) assert.match(text, new RegExp(id));
    assert.match(text, /KEYS: fix overflow in keyctl_pkey_params_get_2/);
    const vex = await api<{ statements: Array<{ vulnerability: { name: string }; status: string }> }>(
      w.server,
      'GET',
      `/api/v1/hosts/${hostId}/vex`,
    );
    for (const id of ids) {
      assert.equal(vex.statements.find((s) => s.vulnerability.name === id)?.status, 'fixed', `VEX for ${id}`);
    }
    const exp = await api<HostExposure>(w.server, 'GET', `/api/v1/hosts/${hostId}/exposure`);
    const open = new Set(exp.effective.map((c) => c.id));
    for (const id of ids) assert.ok(!open.has(id), `${id} still counted open`);
    assert.ok(exp.mitigated.length >= 5, `mitigated: ${exp.mitigated.join(', ')}`);
  });

  it('rollback to level 1 brings the old results back', async () => {
    const rb = await agent(w.guest, 'rollback --to 1', 600_000);
    assert.equal(rb.code, 0, `${rb.stdout}\n${rb.stderr}`);
    const all = await runTriggers(w.guest, dirs(ids));
    console.log('rolled back:', Object.fromEntries(all));
    for (const [id, v] of all) assert.equal(v, id === FIRST ? 'FIXED' : 'VULNERABLE', id);
    const counts = await workloadCounts(w.guest);
    assert.equal(counts.fail, 0, 'the workload saw failed reads');
    assert.ok(counts.ok > 0);
  });
});
