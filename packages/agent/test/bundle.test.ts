import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { FakeKernel } from './helpers/fake-kernel.ts';
import { FakeServer, REGISTRATION_KEY } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';

const pkgDir = join(dirname(fileURLToPath(import.meta.url)), '..');
/** Sanity bound on the single-file agent; it is ~300 KB minified today. */
const MAX_BUNDLE_BYTES = 1024 * 1024;

describe('the bundled single-file agent', () => {
  let dir: string;
  let bundle: string;
  before(() => {
    execFileSync('npm', ['run', '--silent', 'bundle'], { cwd: pkgDir, stdio: 'pipe' });
    dir = mkdtempSync(join(tmpdir(), 'lg-bundle-'));
    // Outside the repo: no node_modules to fall back on.
    bundle = join(dir, 'livegraft-agent.mjs');
    copyFileSync(join(pkgDir, 'dist/livegraft-agent.mjs'), bundle);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = (args: string[], env: Record<string, string> = {}) =>
    spawnSync(process.execPath, [bundle, ...args], {
      cwd: dir,
      encoding: 'utf8',
      env: { PATH: process.env['PATH'] ?? '', LIVEGRAFT_STATE_DIR: join(dir, 'state'), ...env },
    });

  it('is reasonably small and starts with a shebang', () => {
    assert.ok(statSync(bundle).size < MAX_BUNDLE_BYTES, `${statSync(bundle).size} bytes`);
    assert.equal(execFileSync('head', ['-c', '19', bundle], { encoding: 'utf8' }), '#!/usr/bin/env node');
  });

  it('prints help with no node_modules around', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage: livegraft-agent/);
    assert.match(r.stdout, /rollback/);
  });

  it('reads a fake kernel tree from the environment', () => {
    const k = new FakeKernel(join(dir, 'k'));
    const env = { ...k.env, LIVEGRAFT_CONFIG: join(dir, 'none.json') };
    const u = run(['uname'], env);
    assert.equal(u.stdout, `${k.release}\n`, u.stderr);
    const s = run(['status', '--json'], env);
    assert.equal(s.status, 1, s.stderr);
    assert.equal((JSON.parse(s.stdout) as { kernel: { id: string } }).kernel.id, k.id);
    const c = run(['check'], env);
    assert.equal(c.status, 4);
    assert.match(c.stderr, /^error \[CONFIG_MISSING\]/);
  });

  it('runs signed delivery (tuf-js bundled): enrol pins the root, update verifies and reaches insmod', async () => {
    const server = await new FakeServer().start();
    try {
      const k = new FakeKernel(join(dir, 'k2'));
      // A stand-in insmod first on PATH: the bundle must never touch the real kernel here.
      const bin = join(dir, 'bin');
      mkdirSync(bin, { recursive: true });
      writeFileSync(
        join(bin, 'insmod'),
        '#!/bin/sh\necho "insmod: ERROR: could not insert module $1: Invalid module format" >&2\nexit 1\n',
      );
      chmodSync(join(bin, 'insmod'), 0o755);
      const env = {
        ...k.env,
        PATH: `${bin}:${process.env['PATH'] ?? ''}`,
        LIVEGRAFT_CONFIG: join(dir, 'agent2.json'),
        LIVEGRAFT_STATE_DIR: join(dir, 'state2'),
      };
      const runAsync = (args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> =>
        new Promise((resolve) => {
          const c = spawn(process.execPath, [bundle, ...args], { cwd: dir, env });
          let stdout = '';
          let stderr = '';
          c.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
          c.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
          c.on('close', (status) => resolve({ status, stdout, stderr }));
        });
      const e = await runAsync(['enroll', '--insecure', '--server', server.url, '--key', REGISTRATION_KEY]);
      assert.equal(e.status, 0, e.stderr);
      assert.match(e.stdout, /pinned TUF root version 1/);
      server.publish(k.id, makePatch(k, 1));
      const u = await runAsync(['update']);
      assert.equal(u.status, 4);
      assert.match(u.stderr, /^error \[KERNEL_LOAD_ENOEXEC\]/);
      assert.ok(
        server.tufRequests.some((f) => f.startsWith('targets/')),
        'module fetched through TUF',
      );
    } finally {
      await server.stop();
    }
  });
});
