import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { manifestValidator } from '@livegraft/protocol';
import { examplesDir, fakeHeaders, installedHeaders, listDir, repoRoot, scratch } from './helpers.ts';

// Resolved here: `--import tsx` alone would be looked up from the child's working directory.
const tsx = import.meta.resolve('tsx');
const bin = path.join(repoRoot, 'packages', 'builder', 'src', 'bin.ts');

interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

function startCli(
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
): { kill: (sig: NodeJS.Signals) => void; done: Promise<CliRun> } {
  const child = spawn(process.execPath, ['--import', tsx, bin, ...args], {
    cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const done = new Promise<CliRun>((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  return { kill: (sig) => child.kill(sig), done };
}

function runCli(args: string[], cwd: string): Promise<CliRun> {
  return startCli(args, cwd).done;
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

  it('on SIGTERM stops make, removes the build directory and writes nothing', async () => {
    const cwd = path.join(tmp.dir, 'cancel');
    const tmpRoot = path.join(tmp.dir, 'cancel-tmp');
    const binDir = path.join(tmp.dir, 'cancel-bin');
    const marker = path.join(tmp.dir, 'make-pid');
    await Promise.all([mkdir(cwd), mkdir(tmpRoot), mkdir(binDir)]);
    // A stand-in make that records its pid and hangs, so the signal always lands mid-build.
    await writeFile(path.join(binDir, 'make'), `#!/bin/sh\necho $$ > "${marker}"\nexec sleep 60\n`, { mode: 0o755 });
    const headersDir = await fakeHeaders(path.join(tmp.dir, 'cancel-headers'));
    const child = startCli(
      ['--kernel', headersDir, '--level', '1', path.join(examplesDir, 'null-write-tripwire')],
      cwd,
      {
        ...process.env,
        PATH: `${binDir}:${process.env.PATH ?? ''}`,
        TMPDIR: tmpRoot,
      },
    );
    const deadline = Date.now() + 20_000;
    while (!existsSync(marker) && Date.now() < deadline) await delay(50);
    const makePid = Number((await readFile(marker, 'utf8')).trim());
    child.kill('SIGTERM');
    const r = await child.done;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /error \[CANCELLED\]/);
    assert.throws(() => process.kill(makePid, 0), { code: 'ESRCH' }, 'make was killed');
    assert.deepEqual(await listDir(cwd), []);
    // TMPDIR also holds tsx's cache; only our build directory must be gone.
    assert.deepEqual(
      (await listDir(tmpRoot)).filter((f) => f.startsWith('livegraft-build-')),
      [],
    );
  });
});
