// A failed authentication leaves a log line a defender can trace: client address, method,
// URL and reason, and never the secret that was tried.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { kernelIdentity, startHarness, type Harness } from './helpers.ts';

const TRIED_TOKEN = 'lgt_tried-by-a-brute-force-0123456789';
const TRIED_KEY = 'a-wrong-registration-key-0123456789';

describe('failed authentication in the log', () => {
  let h: Harness;
  const lines: Array<Record<string, unknown>> = [];
  const raw: string[] = [];

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
          raw.push(line);
          lines.push(JSON.parse(line) as Record<string, unknown>);
        }
        done();
      },
    });
    h = await startHarness({ logger: pino({ level: 'info' }, sink) });
  });
  after(async () => h.stop());

  it('logs the client address, method, URL and code of a wrong bearer token, without the token', async () => {
    const res = await h.call('GET', '/hosts?secret=in-the-query', { token: TRIED_TOKEN });
    assert.equal(res.status, 401);
    const line = lines.find((l) => l['msg'] === 'authentication failed' && l['code'] === 'AUTH_INVALID');
    assert.ok(line, `no failed-authentication line in ${raw.join('\n')}`);
    assert.equal(line['client'], '127.0.0.1');
    assert.equal(line['method'], 'GET');
    assert.equal(line['url'], '/api/v1/hosts');
    assert.equal(line['level'], 40);
  });

  it('logs a wrong registration key at enrolment, without the key', async () => {
    const res = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: { registrationKey: TRIED_KEY, hostname: 'web-1', kernel: kernelIdentity(), agentVersion: '0.1.0' },
    });
    assert.equal(res.status, 403);
    const line = lines.find((l) => l['code'] === 'REGISTRATION_KEY_INVALID');
    assert.ok(line, `no failed-enrolment line in ${raw.join('\n')}`);
    assert.equal(line['client'], '127.0.0.1');
    assert.equal(line['url'], '/api/v1/hosts/enroll');
  });

  it('never writes a tried secret, or a query, to the log', () => {
    const all = raw.join('\n');
    assert.ok(!all.includes(TRIED_TOKEN));
    assert.ok(!all.includes(TRIED_KEY));
    assert.ok(!all.includes('in-the-query'));
    assert.ok(!all.includes(h.adminToken));
    assert.ok(!all.includes(h.registrationKey));
  });
});
