// Slow clients are cut off (headers, then small bodies), only uploads get a longer
// allowance, and answers carry nosniff (plus no-store where they hold a secret).
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { API_PREFIX } from '@livegraft/protocol';
import { buildPatch, kernelIdentity, startHarness, type Harness } from './helpers.ts';

/** Far beyond the shortened deadlines below; the default ones (15 s and more) would not close in it. */
const GIVE_UP_MS = 8_000;
const LIMITS = { headersMs: 300, bodyMs: 300, uploadMs: 60_000, checkIntervalMs: 50 };

function open(h: Harness): Promise<Socket> {
  const { port } = new URL(h.server.url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(port), '127.0.0.1', () => resolve(s));
    s.on('error', reject);
  });
}

/** Resolves to what the server sent before it closed the connection; rejects if it never does. */
function closedByServer(s: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    const giveUp = setTimeout(() => {
      s.destroy();
      reject(new Error('the server kept the slow connection open'));
    }, GIVE_UP_MS);
    s.on('close', () => {
      clearTimeout(giveUp);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
  });
}

describe('slow clients and answer headers', () => {
  let h: Harness;
  before(async () => {
    h = await startHarness({ slowClients: LIMITS });
  });
  after(async () => h.stop());

  it('closes a connection whose headers never end (slowloris)', async () => {
    const s = await open(h);
    const closed = closedByServer(s);
    s.write('GET /healthz HTTP/1.1\r\nHost: lg\r\nX-Slow: a');
    const answer = await closed;
    assert.ok(answer === '' || answer.startsWith('HTTP/1.1 408'), answer);
  });

  it('closes a check-in whose body never arrives', async () => {
    const s = await open(h);
    const closed = closedByServer(s);
    s.write(
      `POST ${API_PREFIX}/hosts/checkin HTTP/1.1\r\nHost: lg\r\nContent-Type: application/json\r\n` +
        `Content-Length: 500\r\n\r\n{"kernel":`,
    );
    await closed;
  });

  it('lets an upload take longer than a small body may, within its own bound', async () => {
    const p = buildPatch({ salt: 'slow-upload' });
    const s = await open(h);
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    const ended = new Promise<void>((resolve) => s.on('close', () => resolve()));
    s.write(
      `PUT ${API_PREFIX}/modules/${p.sha256} HTTP/1.1\r\nHost: lg\r\nAuthorization: Bearer ${h.adminToken}\r\n` +
        `Content-Type: application/octet-stream\r\nContent-Length: ${p.bytes.length}\r\nConnection: close\r\n\r\n`,
    );
    s.write(p.bytes.subarray(0, 10));
    await sleep(LIMITS.bodyMs * 3);
    s.write(p.bytes.subarray(10));
    await ended;
    assert.match(Buffer.concat(chunks).toString('latin1'), /^HTTP\/1\.1 201/);
  });

  it('answers nosniff everywhere and no-store where a secret is returned', async () => {
    const health = await h.call('GET', '/healthz', { token: null });
    assert.equal(health.headers.get('x-content-type-options'), 'nosniff');
    const refused = await h.call('GET', '/hosts', { token: 'wrong-token-0123456789' });
    assert.equal(refused.status, 401);
    assert.equal(refused.headers.get('x-content-type-options'), 'nosniff');
    const token = await h.call('POST', '/tokens', { json: { name: 'ci', role: 'viewer' } });
    assert.equal(token.status, 201);
    assert.equal(token.headers.get('cache-control'), 'no-store');
    assert.equal(token.headers.get('x-content-type-options'), 'nosniff');
    const enrolled = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: { registrationKey: h.registrationKey, hostname: 'web-1', kernel: kernelIdentity(), agentVersion: '0.1.0' },
    });
    assert.equal(enrolled.status, 201);
    assert.equal(enrolled.headers.get('cache-control'), 'no-store');
  });
});
