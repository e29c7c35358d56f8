import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { manifestValidator } from '@livegraft/protocol';
import { examplesDir, installedHeaders, listDir, repoRoot, scratch } from './helpers.ts';

// Resolved here: `--import tsx` alone would be looked up from the child's working directory.
const tsx = import.meta.resolve('tsx');
const bin = path.join(repoRoot, 'packages', 'builder', 'src', 'bin.ts');

function runCli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, bin, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('livegraft-build command line', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch();
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('exits 64 on a usage error', async () => {
    const r = await runCli(['--level', '1', 'x'], repoRoot);
    assert.equal(r.code, 64);
    assert.match(r.stderr, /--kernel/);
  });

  it('prints "error [CODE]: message" and exits non-zero on failure', async () => {
    const r = await runCli(['--kernel', path.join(tmp.dir, 'no-such-headers'), '--level', '1', 'x'], repoRoot);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error \[HEADERS_NOT_FOUND\]: /);
    assert.equal(r.stdout, '');
  });

  const headers = installedHeaders();
  it(
    'builds into the current directory by default and prints the manifest with --json',
    { skip: headers.skip },
    async () => {
      const cwd = path.join(tmp.dir, 'cwd');
      await mkdir(cwd);
      const r = await runCli(
        ['--kernel', headers.dir ?? '', '--level', '1', '--json', path.join(examplesDir, 'cmdline-redact')],
        cwd,
      );
      assert.equal(r.code, 0, r.stderr);
      const manifest = manifestValidator.parse(JSON.parse(r.stdout));
      assert.equal(manifest.level, 1);
      assert.deepEqual(await listDir(cwd), [`${manifest.name}.json`, manifest.module.file].sort());
    },
  );
});
