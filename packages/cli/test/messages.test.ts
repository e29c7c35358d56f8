import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { API_PREFIX, kernelIdFromProcVersion, type EnrollResponse } from '@livegraft/protocol';
import { CLI_BIN, runCli, startServerProcess, tempDir, type RunningServer } from './helpers.ts';

const PROC =
  'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)';

/** Each message names the problem and the fix. */
describe('livegraft CLI messages', () => {
  let s: RunningServer;
  let dir: string;
  let hostId: string;
  let port: string;
  const auth = (): string[] => ['--server', s.url, '--token', s.adminToken];

  before(async () => {
    dir = await tempDir('messages');
    s = await startServerProcess(dir);
    port = new URL(s.url).port;
    const key = (await readFile(`${dir}/registration-key`, 'utf8')).trim();
    const res = await fetch(`${s.url}${API_PREFIX}/hosts/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        registrationKey: key,
        hostname: 'web1.example',
        kernel: {
          id: kernelIdFromProcVersion(PROC),
          release: '6.1.0-18-amd64',
          version: '#1',
          machine: 'x86_64',
          procVersion: PROC,
        },
        agentVersion: '1',
      }),
    });
    assert.equal(res.status, 201);
    hostId = ((await res.json()) as EnrollResponse).hostId;
  });
  after(async () => {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('--server without a scheme says to add http://', async () => {
    for (const cmd of [['patches'], ['vex'], ['hosts']]) {
      const r = await runCli([...cmd, '--server', `127.0.0.1:${port}`, '--token', s.adminToken]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /BAD_SERVER_URL/);
      assert.ok(r.stderr.includes(`use http://127.0.0.1:${port} (or https://127.0.0.1:${port})`), r.stderr);
      assert.doesNotMatch(r.stderr, /Failed to parse URL/);
    }
  });

  it('https:// against an http:// server says it does not speak TLS and to use http://', async () => {
    for (const cmd of [['patches'], ['vex']]) {
      const r = await runCli([...cmd, '--server', `https://127.0.0.1:${port}`, '--token', s.adminToken]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /SERVER_UNREACHABLE/);
      assert.match(r.stderr, /does not speak TLS/);
      assert.ok(r.stderr.includes(`use http://127.0.0.1:${port}`), r.stderr);
    }
  });

  it('--token-file that does not exist is named, with the option', async () => {
    for (const cmd of [['patches'], ['vex'], ['hosts']]) {
      const r = await runCli([...cmd, '--server', s.url, '--token-file', '/nonexistent']);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /TOKEN_FILE_UNREADABLE.*--token-file \/nonexistent: cannot read it \(no such file\)/);
      assert.doesNotMatch(r.stderr, /ENOENT/);
    }
  });

  it('vex --out into a missing directory is refused before anything is fetched', async () => {
    // The server is unreachable: a refusal that names the directory came first.
    const r = await runCli([
      'vex',
      '--server',
      'http://127.0.0.1:1',
      '--token',
      't',
      '--out',
      '/nonexistent-dir/x.json',
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /OUT_DIR_MISSING.*--out \/nonexistent-dir\/x\.json: directory \/nonexistent-dir does not exist/,
    );
    const pdf = await runCli([
      'report',
      'compliance',
      '--format',
      'pdf',
      ...['--server', 'http://127.0.0.1:1', '--token', 't', '--out', '/nonexistent-dir/r.pdf'],
    ]);
    assert.match(pdf.stderr, /OUT_DIR_MISSING/);
  });

  it('vex --host takes a hostname or an 8-character id prefix, as hosts show does', async () => {
    for (const given of ['web1.example', hostId.slice(0, 8)]) {
      const r = await runCli(['vex', '--host', given, ...auth()]);
      assert.equal(r.code, 0, `${given}: ${r.stderr}`);
      assert.equal((JSON.parse(r.stdout) as { '@context': string })['@context'], 'https://openvex.dev/ns/v0.2.0');
      const show = await runCli(['hosts', 'show', given, ...auth(), '--json']);
      assert.equal(show.code, 0, show.stderr);
      assert.equal((JSON.parse(show.stdout) as { id: string }).id, hostId);
    }
    const none = await runCli(['vex', '--host', 'nosuchhost', ...auth()]);
    assert.match(none.stderr, /HOST_NOT_FOUND.*no host with id, hostname or id prefix/);
  });

  it('tokens create --role with an unknown role lists the valid ones', async () => {
    const r = await runCli(['tokens', 'create', 'x', '--role', 'superuser', ...auth()]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /superuser/);
    assert.match(r.stderr, /admin, operator, viewer, worker/);
  });

  it('promote without a target names --to', async () => {
    assert.equal((await runCli(['feeds', 'create', 'lonely', ...auth()])).code, 0);
    const r = await runCli(['promote', 'lonely', ...auth()]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, /feed lonely promotes to no feed: name the target feed with --to <feed>/);
  });

  it('validation errors of a union list the allowed values', async () => {
    const res = await fetch(`${s.url}${API_PREFIX}/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'x', role: 'superuser' }),
    });
    const body = (await res.json()) as { message: string };
    assert.equal(res.status, 400);
    assert.match(body.message, /\/role: must be one of "admin", "operator", "viewer", "worker"/);
    const feed = await fetch(`${s.url}${API_PREFIX}/feeds/lonely`, {
      method: 'PATCH',
      headers: { authorization: `Bearer ${s.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ promotesTo: 5 }),
    });
    const m = ((await feed.json()) as { message: string }).message;
    assert.equal(feed.status, 400);
    assert.match(m, /\/promotesTo: must be one of a string matching .*, null/);
    assert.doesNotMatch(m, /anyOf|equal to constant/);
  });

  it('report policy --help says reading needs a viewer and changing needs an admin', async () => {
    const r = await runCli(['report', 'policy', '--help']);
    assert.match(r.stdout, /viewer role or above/);
    assert.match(r.stdout, /--set and --reset\s+change it \(admin role\)/);
  });

  it('server --port in use names the port, ends with a newline, and creates nothing', async () => {
    const data = join(dir, 'second-server');
    const child = spawn(process.execPath, ['--import', 'tsx', CLI_BIN, 'server', '--data-dir', data, '--port', port], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.notEqual(code, 0);
    assert.ok(stderr.includes(`port ${port} on 127.0.0.1 is already in use`), stderr);
    assert.match(stderr, /--port/);
    assert.ok(stderr.endsWith('\n'));
    assert.equal(existsSync(data), false, 'no data directory, secrets or keys');
  });
});
