import assert from 'node:assert/strict';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  API_PREFIX,
  kernelIdFromProcVersion,
  type CoverageReport,
  type FixRecord,
  type JobRecord,
  type TokenCreated,
} from '@livegraft/protocol';
import { readFixDir } from '../src/pipeline.ts';
import { runCli, startServerProcess, tempDir, type RunningServer } from './helpers.ts';

const PROC =
  'Linux version 6.1.0-50-amd64 (debian-kernel@lists.debian.org) (x86_64-linux-gnu-gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.176-1 (2026-06-01)';
const PATCH =
  'From c89477ad79446867394360b29bb801010fc3ff22 Mon Sep 17 00:00:00 2001\nSubject: [PATCH] inet: drop ICMP to IPPROTO_RAW\n\n---\n' +
  'diff --git a/net/ipv4/icmp.c b/net/ipv4/icmp.c\n--- a/net/ipv4/icmp.c\n+++ b/net/ipv4/icmp.c\n' +
  '@@ -1,3 +1,4 @@\n a\n b\n+c\n d\n';

describe('livegraft fixes, jobs, coverage', () => {
  let s: RunningServer;
  let dir: string;
  const cli = async (...args: string[]): Promise<unknown> => {
    const r = await runCli([...args, '--server', s.url, '--token', s.adminToken, '--json']);
    assert.equal(r.code, 0, `livegraft ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };
  const fixDir = async (
    name: string,
    spec: Record<string, unknown>,
    files: Record<string, string>,
  ): Promise<string> => {
    const d = join(dir, name);
    await mkdir(d, { recursive: true });
    await writeFile(join(d, 'fix.json'), JSON.stringify(spec));
    for (const [f, text] of Object.entries(files)) await writeFile(join(d, f), text);
    return d;
  };

  before(async () => {
    dir = await tempDir('pipeline');
    s = await startServerProcess(dir);
    const key = (await readFile(`${dir}/registration-key`, 'utf8')).trim();
    const kernel = { id: kernelIdFromProcVersion(PROC), release: '6.1.0-50-amd64', version: '#1', machine: 'x86_64' };
    const res = await fetch(`${s.url}${API_PREFIX}/hosts/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        registrationKey: key,
        hostname: 'web1',
        kernel: { ...kernel, procVersion: PROC },
        agentVersion: '1',
      }),
    });
    assert.equal(res.status, 201);
  });
  after(async () => {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a fix directory: fix.json, the files it names and the small files beside them', async () => {
    const d = await fixDir(
      'read',
      {
        id: 'raw-icmp',
        title: 'raw icmp',
        cves: ['CVE-2026-46266'],
        patches: ['upstream.patch'],
        trigger: { source: 'trigger.c' },
      },
      {
        'upstream.patch': PATCH,
        'trigger.c': 'int main(void){return 0;}\n',
        'trigger.modules': 'ipip\n',
        '.hidden~': 'x',
      },
    );
    const b = await readFixDir(d);
    assert.deepEqual(
      b.files.map((f) => f.name),
      ['upstream.patch', 'trigger.c', 'trigger.modules'],
    );
    await rm(join(d, 'trigger.c'));
    await assert.rejects(readFixDir(d), /fix\.json names trigger\.c, but .*does not exist/);
    await assert.rejects(readFixDir(join(dir, 'nowhere')), /has no fix\.json/);
  });

  it('fixes submit, list, show; jobs; coverage; a worker token', async () => {
    const d = await fixDir(
      'submit',
      {
        id: 'raw-icmp',
        title: 'raw icmp',
        cves: ['CVE-2026-46266'],
        patches: ['upstream.patch'],
        fixedIn: { '6.1': '6.1.187' },
      },
      { 'upstream.patch': PATCH },
    );
    const f = (await cli('fixes', 'submit', d)) as FixRecord;
    assert.equal(f.id, 'raw-icmp');
    assert.deepEqual(f.commits, [
      { id: 'c89477ad79446867394360b29bb801010fc3ff22', subject: 'inet: drop ICMP to IPPROTO_RAW' },
    ]);
    assert.deepEqual(
      f.plan.map((p) => [p.release, p.state, p.jobState]),
      [['6.1.0-50-amd64', 'to-build', 'queued']],
    );
    const text = await runCli(['fixes', 'show', 'raw-icmp', '--server', s.url, '--token', s.adminToken]);
    assert.match(text.stdout, /6\.1\.0-50-amd64\s+to-build/);
    assert.deepEqual(
      ((await cli('fixes', 'list')) as FixRecord[]).map((x) => x.id),
      ['raw-icmp'],
    );
    const jobs = (await cli('jobs')) as JobRecord[];
    assert.deepEqual(
      jobs.map((j) => [j.fixId, j.state]),
      [['raw-icmp', 'queued']],
    );
    const cov = (await cli('coverage')) as CoverageReport;
    const row = cov.rows.find((r) => r.cve === 'CVE-2026-46266');
    assert.equal(row?.cells[0]?.state, 'queued');
    const table = await runCli(['coverage', '--server', s.url, '--token', s.adminToken]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, /CVE-2026-46266\s+\S+\s+queued/);

    const again = await runCli(['fixes', 'submit', d, '--server', s.url, '--token', s.adminToken]);
    assert.notEqual(again.code, 0);
    assert.match(again.stderr, /FIX_DUPLICATE.*already submitted/);
    const bad = await fixDir('bad', { id: 'bad', title: 'bad', cves: [], patches: ['p.patch'] }, { 'p.patch': PATCH });
    const noCve = await runCli(['fixes', 'submit', bad, '--server', s.url, '--token', s.adminToken]);
    assert.match(noCve.stderr, /FIX_NO_CVE.*names no CVE/);

    const worker = (await cli('tokens', 'create', 'builder', '--role', 'worker')) as TokenCreated;
    assert.equal(worker.role, 'worker');
    const refused = await runCli(['jobs', '--server', s.url, '--token', worker.token]);
    assert.match(refused.stderr, /FORBIDDEN/);
  });
});
