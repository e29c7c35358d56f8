// A validation VM that hangs is killed at the validation's deadline and counts
// as a failed validation with its console kept; nothing waits on it forever.
// QEMU is replaced by a program that prints a console line and then hangs.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { PatchManifest } from '@livegraft/protocol';
import { spawnRunner } from '../src/runner.ts';
import { validateLevel } from '../src/validate/validate.ts';
import { fakeQemuOnPath } from './helpers.ts';

const manifest = (name: string): PatchManifest => ({
  schema: 1,
  name,
  level: 1,
  replace: true,
  kernel: {
    id: 'a'.repeat(64),
    release: '6.1.0-50-amd64',
    vermagic: '6.1.0-50-amd64 SMP preempt mod_unload modversions ',
  },
  fixes: [{ id: 'F', title: 'f', cves: [], functions: [{ name: 'getppid', object: 'vmlinux' }] }],
  cves: [],
  module: { file: `${name}.ko`, sha256: 'b'.repeat(64), size: 4 },
  builtAt: new Date(0).toISOString(),
  builder: 'test',
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('a validation guest that hangs', () => {
  let dir = '';
  let restorePath = (): void => undefined;
  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'lg-hang-'));
    restorePath = await fakeQemuOnPath(
      dir,
      `echo $$ > ${dir}/qemu.pid\necho "fake console: the kernel stops here"\nexec sleep 600\n`,
    );
    await mkdir(path.join(dir, 'modules', 'kernel'), { recursive: true });
    await writeFile(path.join(dir, 'lp.json'), JSON.stringify(manifest('livegraft_aaaaaaaaaaaa_l1')));
    await writeFile(path.join(dir, 'livegraft_aaaaaaaaaaaa_l1.ko'), 'fake');
    await writeFile(path.join(dir, 'vmlinuz'), 'fake');
  });
  after(async () => {
    restorePath();
    await rm(dir, { recursive: true, force: true });
  });

  it('is killed at the deadline; the record fails with the reason and keeps the console', async () => {
    const { record, consoleLog } = await validateLevel({
      release: '6.1.0-50-amd64',
      vmlinuz: path.join(dir, 'vmlinuz'),
      modulesDir: path.join(dir, 'modules'),
      level: {
        manifest: manifest('livegraft_aaaaaaaaaaaa_l1'),
        manifestPath: path.join(dir, 'lp.json'),
        modulePath: path.join(dir, 'livegraft_aaaaaaaaaaaa_l1.ko'),
      },
      fixes: [],
      newFixId: 'F',
      node: process.execPath,
      agentBundle: path.join(dir, 'lp.json'),
      workDir: path.join(dir, 'work'),
      run: spawnRunner,
      timeoutMs: 60_000,
    });
    assert.equal(record.result, 'failed');
    assert.match(
      record.reason ?? '',
      /VALIDATION_TIMEOUT: booting the kernel: the validation ran out of time; the guest was killed/,
    );
    assert.match(consoleLog, /fake console: the kernel stops here/);
    // On a loaded machine the image build may use up the deadline: the guest is then killed before its
    // first line, and the console says nothing. Either way no guest is left running.
    const pidText = await readFile(path.join(dir, 'qemu.pid'), 'utf8').catch(() => '');
    if (pidText !== '') {
      assert.match(consoleLog, /fake console: the kernel stops here/);
      const pid = Number(pidText);
      for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(alive(pid), false, 'the hung guest is still running');
    }
  });
});
