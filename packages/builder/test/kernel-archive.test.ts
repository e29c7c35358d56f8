import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import type { ProcessRunner } from '../src/runner.ts';
import {
  compareKernelDebianVersions,
  pickKbuildVersion,
  listAvailableBuilds,
  parseMadison,
  pickTestRelease,
  resolveDebianVersion,
  upstreamOf,
} from '../src/kernel/index.ts';

const MIRROR = 'http://deb.example.org/debian';
const madisonLine = (pkg: string, v: string, suite = 'bookworm/main'): string =>
  ` ${pkg} | ${v} | ${MIRROR} ${suite} amd64 Packages`;

/** A fake apt-cache answering from a table of package → versions (newest first). */
function fakeAptCache(table: Record<string, string[]>): { run: ProcessRunner; calls: string[][] } {
  const calls: string[][] = [];
  const run: ProcessRunner = (command, args) => {
    calls.push([command, ...args]);
    let stdout = '';
    if (args[0] === 'madison')
      stdout = args
        .slice(1)
        .flatMap((p) => (table[p] ?? []).map((v) => madisonLine(p, v)))
        .join('\n');
    if (args[0] === 'pkgnames')
      stdout = Object.keys(table)
        .filter((p) => p.startsWith(args[1] ?? ''))
        .join('\n');
    return Promise.resolve({ code: 0, signal: null, stdout, stderr: '', timedOut: false, truncated: false });
  };
  return { run, calls };
}

const archive = {
  'linux-image-6.1.0-53-amd64-unsigned': ['6.1.187-1'],
  'linux-image-6.1.0-50-amd64-unsigned': ['6.1.176-1'],
  'linux-image-6.1.0-9-amd64-unsigned': ['6.1.27-1'],
  'linux-image-6.1.0-50-amd64': ['6.1.176-1'],
  'linux-image-6.1.0-50-cloud-amd64-unsigned': ['6.1.176-1'],
};

describe('Debian archive versions', () => {
  it('parses apt-cache madison, newest first, ignoring Sources lines', () => {
    const text = [
      madisonLine('linux-image-6.1.0-50-amd64-unsigned', '6.1.176-2'),
      madisonLine('linux-image-6.1.0-50-amd64-unsigned', '6.1.176-1', 'bookworm-security/main'),
      '     linux | 6.1.176-1 | http://deb.example.org/debian bookworm/main Sources',
    ].join('\n');
    assert.deepEqual(
      parseMadison(text),
      new Map([['linux-image-6.1.0-50-amd64-unsigned', ['6.1.176-2', '6.1.176-1']]]),
    );
  });

  it('derives the upstream version', () => {
    assert.equal(upstreamOf('6.1.176-1'), '6.1.176');
    assert.equal(upstreamOf('6.1.192-3'), '6.1.192');
    assert.equal(upstreamOf('1:6.1.27-1~deb12u1'), '6.1.27');
  });

  it('resolves a build from the image package in the archive', async () => {
    const { run, calls } = fakeAptCache(archive);
    assert.deepEqual(await resolveDebianVersion('6.1.0-50-amd64', run), {
      debianVersion: '6.1.176-1',
      upstreamVersion: '6.1.176',
    });
    assert.deepEqual(calls, [['apt-cache', 'madison', 'linux-image-6.1.0-50-amd64-unsigned']]);
  });

  it('names the builds the archive has when it lacks the one asked for', async () => {
    const { run } = fakeAptCache(archive);
    await assert.rejects(
      resolveDebianVersion('6.1.0-51-amd64', run),
      (err: unknown) =>
        isLivegraftError(err) &&
        err.code === 'KERNEL_BUILD_UNKNOWN' &&
        err.message.includes('6.1.0-9-amd64 (6.1.27-1), 6.1.0-50-amd64 (6.1.176-1), 6.1.0-53-amd64 (6.1.187-1)'),
    );
  });

  it('lists the 6.1 amd64 builds oldest first and picks the test release', async () => {
    const { run } = fakeAptCache(archive);
    assert.deepEqual(await listAvailableBuilds(run), [
      { release: '6.1.0-9-amd64', debianVersion: '6.1.27-1' },
      { release: '6.1.0-50-amd64', debianVersion: '6.1.176-1' },
      { release: '6.1.0-53-amd64', debianVersion: '6.1.187-1' },
    ]);
    assert.equal(await pickTestRelease(run), '6.1.0-50-amd64');
    const without50 = Object.fromEntries(Object.entries(archive).filter(([k]) => !k.includes('-50-')));
    assert.equal(await pickTestRelease(fakeAptCache(without50).run), '6.1.0-9-amd64');
    await assert.rejects(
      pickTestRelease(fakeAptCache({}).run),
      (err: unknown) => isLivegraftError(err) && err.code === 'KERNEL_BUILD_UNKNOWN',
    );
  });
});

describe('the kbuild paired with a build', () => {
  it('takes the exact version when the archive still has it', () => {
    assert.equal(pickKbuildVersion('6.1.176-1', ['6.1.192-3', '6.1.176-1']), '6.1.176-1');
  });
  it('takes the nearest newer version of the series when the exact one is gone', () => {
    assert.equal(pickKbuildVersion('6.1.187-1', ['6.1.192-3', '6.1.176-1', '6.1.190-1']), '6.1.190-1');
  });
  it('falls back to the nearest older version when none is newer', () => {
    assert.equal(pickKbuildVersion('6.1.199-1', ['6.1.176-1', '6.1.192-3']), '6.1.192-3');
    assert.equal(pickKbuildVersion('6.1.176-1', []), undefined);
  });
  it('orders revisions after the upstream version', () => {
    assert.ok(compareKernelDebianVersions('6.1.192-3', '6.1.192-2') > 0);
    assert.ok(compareKernelDebianVersions('6.1.99-1', '6.1.187-1') < 0);
  });
});
