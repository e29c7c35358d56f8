// Real-kernel proof of the "prove it" features: a fix with an exploit
// tripwire is pushed to a running daemon, an unprivileged user's exploit
// attempt is blocked, and the alert with the right CVE and uid reaches the
// server and its webhook within seconds; the host's scanner files and its
// OpenVEX document say the CVE is fixed live.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createWorld, publish, type BuiltPatch, type World } from './lib/world.ts';
import { agent, viewKernel } from './lib/probe.ts';
import { api } from './lib/admin.ts';
import { rootPinArg } from './lib/root-pin.ts';

const DEMO_CVE = 'CVE-2099-0001';
const EXPLOIT = 'LIVEGRAFT-DEMO-EXPLOIT';
/** How long the alert may take from the attempt to the server (daemon poll + batch + HTTP). */
const ALERT_DEADLINE_MS = 20_000;

async function until<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('exploit tripwires and attestations on a real kernel', () => {
  let w: World;
  let tripwire: BuiltPatch;
  let hook: Server;
  const alerts: unknown[] = [];
  let hostId = '';

  before(async () => {
    hook = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        alerts.push(JSON.parse(body));
        res.end('ok');
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const hookPort = (hook.address() as { port: number }).port;
    w = await createWorld('proof', {
      extraLevels: { 3: ['cmdline-redact', 'loadavg-lastpid', 'null-write-tripwire'] },
      serverArgs: ['--push-spread', '0', '--alert-webhook', `http://127.0.0.1:${hookPort}/alerts`],
    });
    tripwire = w.extra.get(3) as BuiltPatch;
    const en = await agent(
      w.guest,
      `enroll --server http://10.0.2.100 --key ${w.server.registrationKey} ${await rootPinArg(w.server)}`,
    );
    assert.equal(en.code, 0, en.stderr);
    hostId = (await api<Array<{ id: string }>>(w.server, 'GET', '/api/v1/hosts'))[0]?.id ?? '';
    await w.guest.sh('(livegraft-agent run > /tmp/daemon.log 2>&1 &)');
  });
  after(async () => {
    await w?.close();
    hook?.close();
  });

  it('the daemon applies a release pushed by the server without polling', async () => {
    await until('level 1 applied by the daemon', 120_000, async () =>
      (await viewKernel(w.guest)).patches.has(w.level1.manifest.name) ? true : undefined,
    );
    const t = Date.now();
    await publish(w.server, tripwire);
    // Done means enabled with no transition, and the agent's own record written: the patch's sysfs entry reads
    // enabled 0, transition 0 while its module is still loading (seen on a loaded machine), and the tests below read
    // the scanner files the agent writes last.
    const want = `${w.kernel.release}+lg${tripwire.manifest.level}`;
    await until('the pushed level 3', 120_000, async () => {
      const p = (await viewKernel(w.guest)).patches.get(tripwire.manifest.name);
      if (p?.enabled !== '1' || p.transition !== '0') return undefined;
      const effective = await w.guest.run('cat /var/lib/livegraft/effective-version');
      return effective.out.trim() === want ? true : undefined;
    });
    console.log(`publish -> applied in the guest: ${Date.now() - t} ms`);
  });

  it("blocks an unprivileged user's exploit attempt and alerts with the CVE and uid within seconds", async () => {
    assert.equal((await w.guest.run("su demo -s /bin/sh -c 'echo harmless > /dev/null'")).code, 0);
    const t = Date.now();
    const attempt = await w.guest.run(`su demo -s /bin/sh -c 'echo ${EXPLOIT} > /dev/null'`);
    assert.notEqual(attempt.code, 0, 'the exploit write was not blocked');
    assert.match(attempt.out, /Operation not permitted/);
    const event = await until('tripwire event on the server', ALERT_DEADLINE_MS, async () => {
      const list = await api<Array<{ cve: string; uid: number; comm: string }>>(
        w.server,
        'GET',
        `/api/v1/hosts/${hostId}/tripwires`,
      );
      return list.find((e) => e.cve === DEMO_CVE);
    });
    console.log(`exploit attempt -> alert on the server: ${Date.now() - t} ms`);
    assert.equal(event.uid, 1000);
    const alert = await until('webhook alert', ALERT_DEADLINE_MS, async () =>
      alerts.find((a) => JSON.stringify(a).includes(DEMO_CVE)),
    );
    assert.match(JSON.stringify(alert), /"uid":\s*1000/);
  });

  it('leaves scanner files and an OpenVEX statement saying the CVE is fixed live', async () => {
    const cvelist = await w.guest.sh('cat /var/lib/livegraft/cvelist');
    assert.match(cvelist, new RegExp(`^${DEMO_CVE}$`, 'm'));
    const effective = await w.guest.sh('cat /var/lib/livegraft/effective-version');
    assert.equal(effective, `${w.kernel.release}+lg3`);
    const vex = await api<{ statements: Array<{ vulnerability: { name: string }; status: string }> }>(
      w.server,
      'GET',
      `/api/v1/hosts/${hostId}/vex`,
    );
    const st = vex.statements.find((s) => s.vulnerability.name === DEMO_CVE);
    assert.equal(st?.status, 'fixed');
  });
});
