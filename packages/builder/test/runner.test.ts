import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnRunner } from '../src/index.ts';

describe('spawnRunner', () => {
  it('returns exit code and output', async () => {
    const r = await spawnRunner('sh', ['-c', 'echo out; echo err >&2; exit 3'], {
      timeoutMs: 10_000,
      maxOutputBytes: 1024,
    });
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(r.timedOut, false);
    assert.equal(r.truncated, false);
  });

  it('caps captured output', async () => {
    const r = await spawnRunner('sh', ['-c', 'yes | head -c 100000'], { timeoutMs: 10_000, maxOutputBytes: 1000 });
    assert.equal(r.stdout.length, 1000);
    assert.equal(r.truncated, true);
  });

  it('kills the whole process group on timeout', async () => {
    const started = Date.now();
    // The child shell spawns a grandchild that would keep the pipes open if only the shell were killed.
    const r = await spawnRunner('sh', ['-c', 'sleep 30 & sleep 30; wait'], { timeoutMs: 300, maxOutputBytes: 1024 });
    assert.equal(r.timedOut, true);
    assert.ok(Date.now() - started < 10_000, 'returned promptly');
  });

  it('kills the process group when aborted', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 100);
    const started = Date.now();
    const r = await spawnRunner('sh', ['-c', 'sleep 30 & sleep 30; wait'], {
      timeoutMs: 60_000,
      maxOutputBytes: 1024,
      signal: ac.signal,
    });
    assert.equal(r.timedOut, false);
    assert.notEqual(r.code, 0);
    assert.ok(Date.now() - started < 10_000, 'returned promptly');
  });
});
