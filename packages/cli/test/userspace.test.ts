// `livegraft userspace ...` against a real server: publish a real level
// (Debian's glibc 2.36-9+deb12u7, CVE-2025-0395 and CVE-2026-0915), the
// feeds it landed in, promotion, a rollback by set-level, halt and resume,
// a host pin.
import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  API_PREFIX,
  type EnrollResponse,
  type UserspaceFeedLevel,
  type UserspaceLevelRecord,
  type UserspaceManifest,
  type UserspacePromotion,
} from '@livegraft/protocol';
import { KERNEL_ID, runCli, startServerProcess, tempDir, type RunningServer } from './helpers.ts';

const MANIFEST = join(
  import.meta.dirname,
  '..',
  '..',
  'server',
  'test',
  'fixtures',
  'userspace',
  'lg-libc-so-6-58254ca97202-1.json',
);

describe('livegraft userspace commands', () => {
  let s: RunningServer;
  let dir: string;
  let buildId: string;
  const cli = async (...args: string[]): Promise<unknown> => {
    const r = await runCli([...args, '--server', s.url, '--token', s.adminToken, '--json']);
    assert.equal(r.code, 0, `livegraft ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };

  before(async () => {
    dir = await tempDir('userspace');
    s = await startServerProcess(dir);
    buildId = (JSON.parse(await readFile(MANIFEST, 'utf8')) as UserspaceManifest).library.buildId;
    const key = (await readFile(`${dir}/registration-key`, 'utf8')).trim();
    const res = await fetch(`${s.url}${API_PREFIX}/hosts/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        registrationKey: key,
        hostname: 'app1',
        kernel: { id: KERNEL_ID, release: '6.1.0-18-amd64', version: '#1', machine: 'x86_64', procVersion: 'x' },
        agentVersion: '1',
      }),
    });
    assert.equal(((await res.json()) as EnrollResponse).hostId.length > 0, true);
  });
  after(async () => {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('publishes a level, lists it and the feeds it landed in, promotes, rolls a feed back', async () => {
    const rec = (await cli('userspace', 'publish', MANIFEST)) as UserspaceLevelRecord;
    assert.deepEqual([rec.buildId, rec.level, rec.published], [buildId, 1, true]);
    const levels = (await cli('userspace', 'levels', '--build-id', buildId)) as UserspaceLevelRecord[];
    assert.deepEqual(levels[0]?.cves, ['CVE-2025-0395', 'CVE-2026-0915']);
    const feeds = (await cli('userspace', 'feeds')) as UserspaceFeedLevel[];
    assert.deepEqual(
      feeds.map((f) => [f.feed, f.level, f.source]),
      [
        ['canary', 1, 'publish'],
        ['production', 1, 'publish'],
      ],
    );
    const moved = (await cli('userspace', 'promote', 'canary')) as UserspacePromotion[];
    assert.deepEqual(moved, [{ from: 'canary', to: 'staging', buildId, level: 1, previous: 0 }]);
    const back = (await cli('userspace', 'set-level', 'staging', buildId, '0')) as UserspaceFeedLevel;
    assert.deepEqual([back.level, back.source, back.allowDowngrade], [0, 'rollback', true]);

    const human = await runCli(['userspace', 'feeds', '--feed', 'staging', '--server', s.url, '--token', s.adminToken]);
    assert.match(human.stdout, /staging\s+[0-9a-f]+\s+0\s+1\s+rollback/);
  });

  it('halts and resumes a level; pins a host by hostname', async () => {
    await cli('userspace', 'halt', buildId, '1', '--reason', 'crash report from app1');
    let levels = (await cli('userspace', 'levels')) as UserspaceLevelRecord[];
    assert.equal(levels[0]?.halted, true);
    assert.deepEqual(await cli('userspace', 'resume', buildId, '1'), { ok: true });
    levels = (await cli('userspace', 'levels')) as UserspaceLevelRecord[];
    assert.equal(levels[0]?.halted, false);

    assert.deepEqual(await cli('userspace', 'pin', 'app1', buildId, '0'), { ok: true });
    assert.deepEqual(await cli('userspace', 'unpin', 'app1', buildId), { ok: true });
    assert.deepEqual(await cli('userspace', 'host', 'app1'), []);

    const bad = await runCli(['userspace', 'halt', 'not-hex', '1', '--reason', 'x', '--server', s.url]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /build-id/);
  });
});
