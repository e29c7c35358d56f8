// A host controls its hostname and error texts. None of it may drive the admin's
// terminal: the server refuses a hostname with control characters, and the CLI shows
// every control character in host-supplied text as a visible stand-in.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_PREFIX } from '@livegraft/protocol';
import { runCli, startServerProcess, tempDir, type RunningServer } from './helpers.ts';

const PROC_VERSION =
  'Linux version 6.1.0-18-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0) #1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)';
/** Set the window title, clear the screen, turn the text red; then the same through an 8-bit CSI. */
const HOSTILE = '\x1b]0;pwned\x07\x1b[2J\x1b[31mhello\r\x9b31m';
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/;

describe('host-supplied text in the terminal', () => {
  let s: RunningServer;
  let registrationKey: string;
  let hostToken: string;
  const kernel = {
    id: '',
    release: '6.1.0-18-amd64',
    version: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)',
    machine: 'x86_64',
    procVersion: PROC_VERSION,
  };

  const post = async (path: string, body: unknown, token?: string): Promise<Response> =>
    fetch(`${s.url}${API_PREFIX}${path}`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      },
      body: JSON.stringify(body),
    });

  before(async () => {
    const { kernelIdFromProcVersion } = await import('@livegraft/protocol');
    kernel.id = kernelIdFromProcVersion(PROC_VERSION);
    const dir = await tempDir('escapes');
    s = await startServerProcess(dir);
    const { readFile } = await import('node:fs/promises');
    registrationKey = (await readFile(`${dir}/registration-key`, 'utf8')).trim();
  });
  after(async () => s.stop());

  it('refuses to enrol a hostname holding escape sequences', async () => {
    const res = await post('/hosts/enroll', {
      registrationKey,
      hostname: `web${HOSTILE}`,
      kernel,
      agentVersion: '0.1.0',
    });
    assert.equal(res.status, 400);
    assert.equal(((await res.json()) as { code: string }).code, 'VALIDATION_FAILED');
  });

  it('`livegraft hosts` shows a hostile lastError with its control characters made visible', async () => {
    const enrolled = await post('/hosts/enroll', { registrationKey, hostname: 'web-1', kernel, agentVersion: '0.1.0' });
    assert.equal(enrolled.status, 201);
    hostToken = ((await enrolled.json()) as { token: string }).token;
    const checkin = await post(
      '/hosts/checkin',
      { kernel, appliedLevel: 0, state: 'error', agentVersion: '0.1.0', uptimeSec: 1, lastError: HOSTILE },
      hostToken,
    );
    assert.equal(checkin.status, 200, await checkin.text());
    for (const args of [['hosts'], ['hosts', 'show', 'web-1']]) {
      const r = await runCli([...args, '--server', s.url, '--token', s.adminToken]);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(!RAW_CONTROL.test(r.stdout), `raw control characters in: ${JSON.stringify(r.stdout)}`);
      assert.match(r.stdout, /␛\]0;pwned␇␛\[2J␛\[31mhello␍\\u009b31m/);
    }
    const json = await runCli(['hosts', '--server', s.url, '--token', s.adminToken, '--json']);
    const hosts = JSON.parse(json.stdout) as Array<{ lastError: string | null }>;
    assert.equal(hosts[0]?.lastError, HOSTILE, 'the JSON output still parses to the exact text');
  });
});
