import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startFleetHarness, type FleetHarness } from './fleet-helpers.ts';

const hasOpenssl = spawnSync('openssl', ['version']).status === 0;

function get(url: string, ca: Buffer): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('TLS served directly (--tls-cert/--tls-key)', { skip: hasOpenssl ? false : 'openssl not installed' }, () => {
  let dir: string;
  let h: FleetHarness;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'livegraft-tls-'));
    const made = spawnSync('openssl', [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    assert.equal(made.status, 0, made.stderr.toString());
    h = await startFleetHarness({ config: { tlsCert: join(dir, 'cert.pem'), tlsKey: join(dir, 'key.pem') } });
  });
  after(async () => {
    await h?.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('listens on HTTPS with the given certificate', async () => {
    assert.match(h.server.url, /^https:\/\/127\.0\.0\.1:\d+$/);
    const res = await get(`${h.server.url}/healthz`, await readFile(join(dir, 'cert.pem')));
    assert.deepEqual([res.status, JSON.parse(res.body)], [200, { ok: true }]);
  });

  it('refuses to start with only one of the two', async () => {
    await assert.rejects(
      startFleetHarness({ config: { tlsCert: join(dir, 'cert.pem') } }),
      /TLS needs both --tls-cert and --tls-key/,
    );
  });
});
