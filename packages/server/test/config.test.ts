import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { ValidationError } from '@livegraft/protocol';
import { createServer, parseConfig } from '../src/index.ts';

describe('parseConfig', () => {
  it('fills the defaults and freezes the result', () => {
    const c = parseConfig({});
    assert.deepEqual(
      { ...c },
      { dataDir: './livegraft-data', host: '127.0.0.1', port: 8720, checkinIntervalSec: 3600, logLevel: 'info' },
    );
    assert.ok(Object.isFrozen(c));
  });

  it('refuses bad values, naming each field', () => {
    assert.throws(
      () => parseConfig({ port: 70000, checkinIntervalSec: 0, logLevel: 'loud' }),
      (err: unknown) =>
        err instanceof ValidationError &&
        ['/port', '/checkinIntervalSec', '/logLevel'].every((p) => err.problems.some((x) => x.path === p)),
    );
    assert.throws(() => parseConfig({ adminToken: 'short' }), ValidationError);
  });
});

describe('secrets', () => {
  it('uses configured secrets instead of creating files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'livegraft-server-cfg-'));
    try {
      const adminToken = 'configured-admin-token-0123456789';
      const config = parseConfig({ dataDir: dir, port: 0, adminToken, registrationKey: 'configured-registration-key' });
      const s = await createServer(config, { logger: pino({ level: 'silent' }) });
      try {
        await assert.rejects(stat(join(dir, 'admin-token')), { code: 'ENOENT' });
        const res = await s.app.inject({
          method: 'GET',
          url: '/api/v1/patches',
          headers: { authorization: `Bearer ${adminToken}` },
        });
        assert.equal(res.statusCode, 200);
      } finally {
        await s.close();
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('keeps the secrets it created across restarts and uses the injected generator', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'livegraft-server-cfg-'));
    let n = 0;
    const randomToken = (): string => `generated-secret-number-${++n}`;
    try {
      const config = parseConfig({ dataDir: dir, port: 0 });
      for (let i = 0; i < 2; i++) {
        const s = await createServer(config, { logger: pino({ level: 'silent' }), randomToken });
        await s.close();
      }
      assert.equal((await readFile(join(dir, 'admin-token'), 'utf8')).trim(), 'generated-secret-number-1');
      assert.equal((await readFile(join(dir, 'registration-key'), 'utf8')).trim(), 'generated-secret-number-2');
      assert.equal(n, 2, 'no new secrets on the second start');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
