import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError, kernelIdFromProcVersion } from '@livegraft/protocol';
import { procVersionFromHeaders, targetKernel } from '../src/index.ts';
import { parseStringDefines } from '../src/c-defines.ts';
import { fakeHeaders, installedHeaders, scratch } from './helpers.ts';

describe('kernel identity from headers', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch();
  });
  after(async () => {
    await tmp.cleanup();
  });

  it('rebuilds the /proc/version line (UTS_VERSION in utsversion.h, 6.1+ layout)', async () => {
    const dir = await fakeHeaders(path.join(tmp.dir, 'new'));
    const { line, release } = await procVersionFromHeaders(dir);
    assert.equal(
      line,
      'Linux version 9.9.9-test (builder@example.org) (gcc (Test) 1.2.3, GNU ld 2.40) ' +
        '#1 SMP PREEMPT_DYNAMIC Test 9.9.9-1 (2030-01-01)',
    );
    assert.equal(release, '9.9.9-test');
    const kernel = await targetKernel(dir);
    assert.equal(kernel.id, kernelIdFromProcVersion(line));
    assert.equal(kernel.source, 'headers');
  });

  it('reads UTS_VERSION from compile.h on older kernels', async () => {
    const dir = await fakeHeaders(path.join(tmp.dir, 'old'), {
      'utsrelease.h': '#define UTS_RELEASE "5.10.0-8-amd64"\n',
      'compile.h': [
        '/* This file is auto generated, version 1 */',
        '#define UTS_MACHINE "x86_64"',
        '#define UTS_VERSION "#1 SMP Debian 5.10.46-4 (2021-08-03)"',
        '#define LINUX_COMPILE_BY "debian-kernel"',
        '#define LINUX_COMPILE_HOST "lists.debian.org"',
        '#define LINUX_COMPILER "gcc-10 (Debian 10.2.1-6) 10.2.1 20210110, GNU ld (GNU Binutils for Debian) 2.35.2"',
      ].join('\n'),
    });
    const { line } = await procVersionFromHeaders(dir);
    assert.equal(
      line,
      'Linux version 5.10.0-8-amd64 (debian-kernel@lists.debian.org) (gcc-10 (Debian 10.2.1-6) 10.2.1 20210110, ' +
        'GNU ld (GNU Binutils for Debian) 2.35.2) #1 SMP Debian 5.10.46-4 (2021-08-03)',
    );
  });

  it('says what is missing and suggests --proc-version', async () => {
    const dir = await fakeHeaders(path.join(tmp.dir, 'partial'), { 'utsrelease.h': '#define UTS_RELEASE "1.0"\n' });
    await assert.rejects(procVersionFromHeaders(dir), (err: unknown) => {
      assert.ok(isLivegraftError(err));
      assert.equal(err.code, 'PROC_VERSION_UNAVAILABLE');
      assert.match(err.message, /LINUX_COMPILE_BY/);
      assert.match(err.message, /--proc-version/);
      return true;
    });
  });

  it('takes --proc-version over the headers, but only for the same release', async () => {
    const dir = await fakeHeaders(path.join(tmp.dir, 'override'));
    const file = path.join(tmp.dir, 'proc-version');
    const real = 'Linux version 9.9.9-test (someone@elsewhere) (cc 1) #2 SMP Tue Jan 1 00:00:00 UTC 2030';
    await writeFile(file, `${real}\n`);
    const kernel = await targetKernel(dir, file);
    assert.equal(kernel.procVersion, real);
    assert.equal(kernel.id, kernelIdFromProcVersion(real));
    assert.equal(kernel.source, 'file');

    await writeFile(file, 'Linux version 1.2.3-other (x@y) (cc) #1\n');
    await assert.rejects(targetKernel(dir, file), { code: 'KERNEL_MISMATCH' });
    await writeFile(file, 'garbage\n');
    await assert.rejects(targetKernel(dir, file), { code: 'PROC_VERSION_UNAVAILABLE' });
  });

  it('decodes C string escapes and concatenated literals', () => {
    const d = parseStringDefines(
      '#define A "x \\"q\\" \\\\ y"\n#  define B "ab" "cd"\n#define N 42\n#define C "\\101\\t"\n#define BAD "open\n',
    );
    assert.equal(d.get('A'), 'x "q" \\ y');
    assert.equal(d.get('B'), 'abcd');
    assert.equal(d.get('C'), 'A\t');
    assert.equal(d.has('N'), false);
    assert.equal(d.has('BAD'), false);
  });

  const installed = installedHeaders();
  it("matches the installed headers' own generated strings", { skip: installed.skip }, async () => {
    const dir = installed.dir ?? '';
    const { line, release } = await procVersionFromHeaders(dir);
    assert.ok(line.startsWith(`Linux version ${release} (`), line);
    assert.ok(path.basename(dir).endsWith(release), `${dir} vs ${release}`);
  });
});
