import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import { newcArchive, parseKallsyms, validateKallsyms, withFileLock } from '../src/kernel/index.ts';
import { spawnRunner } from '../src/runner.ts';
import { scratch } from './helpers.ts';

describe('kallsyms parsing', () => {
  it('reads addresses, types, names and modules in file order', () => {
    const entries = parseKallsyms(
      'ffffffff81000000 T _stext\r\nffffffff814406b0 t keyctl_pkey_params_get_2\nffffffffc0a01000 t e1000_probe\t[e1000]\n',
    );
    assert.deepEqual(entries, [
      { address: 0xffffffff81000000n, type: 'T', name: '_stext' },
      { address: 0xffffffff814406b0n, type: 't', name: 'keyctl_pkey_params_get_2' },
      { address: 0xffffffffc0a01000n, type: 't', name: 'e1000_probe', module: 'e1000' },
    ]);
  });

  it('refuses malformed lines and short or address-less dumps', () => {
    assert.throws(
      () => parseKallsyms('ffffffff81000000 T\n'),
      (e: unknown) => isLivegraftError(e) && e.code === 'KALLSYMS_INVALID',
    );
    assert.throws(
      () => validateKallsyms(parseKallsyms('0000000000000000 T start_kernel\n')),
      (e: unknown) => isLivegraftError(e) && e.code === 'KALLSYMS_INVALID',
    );
  });
});

describe('initramfs archive', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch('lg-cpio-');
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('is a newc archive that cpio unpacks', async () => {
    const archive = path.join(tmp.dir, 'a.cpio');
    await writeFile(
      archive,
      newcArchive([
        { name: 'bin', mode: 0o040755 },
        { name: 'bin/tool', mode: 0o100755, data: Buffer.from('abc') },
        { name: 'init', mode: 0o100755, data: Buffer.from('#!/bin/sh\n') },
      ]),
    );
    const out = path.join(tmp.dir, 'out');
    await mkdir(out);
    const r = await spawnRunner('sh', ['-c', 'cpio -idm --quiet < "$1"', 'sh', archive], {
      cwd: out,
      timeoutMs: 30_000,
      maxOutputBytes: 4096,
    });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(await readFile(path.join(out, 'bin', 'tool'), 'utf8'), 'abc');
    assert.equal(await readFile(path.join(out, 'init'), 'utf8'), '#!/bin/sh\n');
  });
});

describe('file locks', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch('lg-lock-');
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('takes over the lock of a dead process and records its own pid', async () => {
    const file = path.join(tmp.dir, 'stale.lock');
    const dead = await spawnRunner('sh', ['-c', 'echo $$'], { timeoutMs: 10_000, maxOutputBytes: 100 });
    await writeFile(file, dead.stdout);
    const seen = await withFileLock(file, () => readFile(file, 'utf8'), { timeoutMs: 5_000, what: 'test lock' });
    assert.equal(seen.trim(), String(process.pid));
  });

  it('serialises holders and times out on a live foreign holder', async () => {
    const file = path.join(tmp.dir, 'busy.lock');
    const order: string[] = [];
    const hold = (name: string) => () =>
      new Promise<void>((r) => {
        order.push(`${name}+`);
        setTimeout(() => {
          order.push(`${name}-`);
          r();
        }, 50);
      });
    await Promise.all([
      withFileLock(file, hold('a'), { timeoutMs: 5_000, what: 'test lock' }),
      withFileLock(file, hold('b'), { timeoutMs: 5_000, what: 'test lock' }),
    ]);
    assert.deepEqual(order, ['a+', 'a-', 'b+', 'b-']);
    await writeFile(file, '1\n'); // pid 1 is alive and not us
    await assert.rejects(
      withFileLock(file, () => Promise.resolve(), { timeoutMs: 300, what: 'test lock' }),
      (e: unknown) => isLivegraftError(e) && e.code === 'LOCK_TIMEOUT',
    );
  });
});
