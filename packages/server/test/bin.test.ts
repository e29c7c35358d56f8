import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
const START_TIMEOUT_MS = 20_000;

describe('livegraft-server bin', () => {
  it('starts on a random port, logs its URL as JSON, serves, and stops on SIGTERM', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'livegraft-server-bin-'));
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', BIN, '--data-dir', dir, '--port', '0', '--checkin-interval', '60', '--log-level', 'info'],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, LIVEGRAFT_ADMIN_TOKEN: 'bin-test-admin-token-0123' },
      },
    );
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no listening line')), START_TIMEOUT_MS);
        child.once('exit', (code) => reject(new Error(`exited early with ${code}`)));
        createInterface({ input: child.stdout }).on('line', (line) => {
          const entry = JSON.parse(line) as { msg?: string };
          const m = /listening at (http:\/\/\S+)/.exec(entry.msg ?? '');
          if (m?.[1] !== undefined) {
            clearTimeout(timer);
            resolve(m[1]);
          }
        });
      });
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const health = await fetch(`${url}/healthz`);
      assert.deepEqual(await health.json(), { ok: true });
      const patches = await fetch(`${url}/api/v1/patches`, {
        headers: { authorization: 'Bearer bin-test-admin-token-0123' },
      });
      assert.equal(patches.status, 200, 'the environment admin token is used');
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      assert.equal(code, 0);
    } finally {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a bad flag value with exit 64', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', BIN, '--log-level', 'loud', '--data-dir', tmpdir()], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const [code] = (await once(child, 'exit')) as [number | null];
    assert.equal(code, 64);
    assert.match(stderr, /logLevel/);
  });
});
