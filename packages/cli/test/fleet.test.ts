import assert from 'node:assert/strict';
import { readFile, rm } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import {
  API_PREFIX,
  type AuditEntry,
  type EnrollResponse,
  type FeedRecord,
  type HostRecord,
  type TokenCreated,
} from '@livegraft/protocol';
import { buildPatch, KERNEL_ID, publish, runCli, startServerProcess, tempDir, type RunningServer } from './helpers.ts';

describe('livegraft fleet commands', () => {
  let s: RunningServer;
  let dir: string;
  let hostId: string;
  const cli = async (...args: string[]): Promise<unknown> => {
    const r = await runCli([...args, '--server', s.url, '--token', s.adminToken, '--json']);
    assert.equal(r.code, 0, `livegraft ${args.join(' ')}: ${r.stderr}`);
    return JSON.parse(r.stdout) as unknown;
  };

  before(async () => {
    dir = await tempDir('fleet');
    s = await startServerProcess(dir);
    const key = (await readFile(`${dir}/registration-key`, 'utf8')).trim();
    const res = await fetch(`${s.url}${API_PREFIX}/hosts/enroll`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        registrationKey: key,
        hostname: 'web1',
        kernel: { id: KERNEL_ID, release: '6.1.0-18-amd64', version: '#1', machine: 'x86_64', procVersion: 'x' },
        agentVersion: '1',
      }),
    });
    hostId = ((await res.json()) as EnrollResponse).hostId;
    await publish(s, buildPatch(KERNEL_ID, 1));
    await publish(s, buildPatch(KERNEL_ID, 2));
  });
  after(async () => {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('feeds: create with a rule and a window, update, set-level by kernel prefix, list', async () => {
    const created = (await cli(
      'feeds',
      'create',
      'ring0',
      '--auto-publish',
      '--promotes-to',
      'staging',
      '--after',
      '2h',
      '--min-percent',
      '50',
      '--window',
      'sat,sun 02:00-04:00',
      '--no-require-validated',
    )) as FeedRecord;
    assert.equal(created.requireValidated, false);
    assert.deepEqual(created.promotion, { afterSec: 7200, minPercent: 50 });
    assert.deepEqual(created.windows, [{ days: ['sat', 'sun'], start: '02:00', end: '04:00' }]);
    const updated = (await cli('feeds', 'update', 'ring0', '--no-auto-publish', '--no-promotion')) as FeedRecord;
    assert.deepEqual([updated.autoPublish, updated.promotion], [false, null]);
    const set = (await cli('feeds', 'set-level', 'ring0', KERNEL_ID.slice(0, 10), '1')) as FeedRecord;
    assert.equal(set.levels[0]?.level, 1);
    const feeds = (await cli('feeds')) as FeedRecord[];
    assert.deepEqual(
      feeds.map((f) => f.name),
      ['canary', 'production', 'ring0', 'staging'],
    );
    const bad = await runCli([
      'feeds',
      'create',
      'x',
      '--window',
      'someday',
      '--server',
      s.url,
      '--token',
      s.adminToken,
    ]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /sat,sun 02:00-04:00/);
  });

  it('promote, pin/unpin by hostname, rollback, hosts move and auto-update', async () => {
    const promoted = (await cli('promote', 'canary')) as { promoted: { to: string; level: number }[] };
    assert.deepEqual(
      promoted.promoted.map((p) => [p.to, p.level]),
      [['staging', 2]],
    );
    await cli('pin', 'host', 'web1', '--level', '1');
    let host = (await cli('hosts', 'show', 'web1')) as HostRecord;
    assert.deepEqual(host.desired, { level: 1, reason: 'pin', allowDowngrade: false, feed: 'production' });
    await cli('unpin', 'host', 'web1');
    await cli('rollback', '--feed', 'production', '--kernel', KERNEL_ID, '--level', '1');
    host = (await cli('hosts', 'show', hostId)) as HostRecord;
    assert.deepEqual(host.desired, { level: 1, reason: 'rollback', allowDowngrade: true, feed: 'production' });
    const moved = (await cli('hosts', 'move', 'web1', 'staging')) as HostRecord;
    assert.equal(moved.feed, 'staging');
    const manual = (await cli('hosts', 'auto-update', 'web1', 'off')) as HostRecord;
    assert.equal(manual.autoUpdate, false);
    const list = (await cli('hosts', '--feed', 'staging')) as HostRecord[];
    assert.deepEqual(
      list.map((h) => [h.hostname, h.desired?.reason]),
      [['web1', 'manual']],
    );
  });

  it('hosts ignore/unignore edit the ignore-list; show and list display it and what it held back', async () => {
    const text = async (...args: string[]): Promise<string> => {
      const r = await runCli([...args, '--server', s.url, '--token', s.adminToken]);
      assert.equal(r.code, 0, `livegraft ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    // Back in production, rolled back to level 1 above.
    await cli('hosts', 'move', 'web1', 'production');
    let host = (await cli('hosts', 'ignore', 'web1', 'fix-1', 'fix-9')) as HostRecord;
    assert.deepEqual(host.ignore, ['fix-1', 'fix-9']);
    host = (await cli('hosts', 'ignore', 'web1', 'fix-1', 'fix-10')) as HostRecord;
    assert.deepEqual(host.ignore, ['fix-1', 'fix-10', 'fix-9'], 'added to the list, once each');
    host = (await cli('hosts', 'show', 'web1')) as HostRecord;
    assert.deepEqual(
      [host.desired?.level, host.desired?.reason, host.desired?.ignoredFixes],
      [0, 'rollback', ['fix-1']],
    );
    const shown = await text('hosts', 'show', 'web1');
    assert.match(shown, /ignored fixes: fix-1, fix-10, fix-9/);
    assert.match(shown, /held at level 0 by ignored fixes: fix-1/);
    const listed = await text('hosts');
    assert.match(listed, /IGNORED/);
    assert.match(listed, /fix-1,fix-10 \+1/);
    const listJson = (await cli('hosts')) as HostRecord[];
    assert.deepEqual(listJson[0]?.ignore, ['fix-1', 'fix-10', 'fix-9']);

    const bad = await runCli(['hosts', 'ignore', 'web1', 'not a fix', '--server', s.url, '--token', s.adminToken]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /VALIDATION_FAILED.*ignore/);
    const neither = await runCli(['hosts', 'unignore', 'web1', '--server', s.url, '--token', s.adminToken]);
    assert.notEqual(neither.code, 0);
    assert.match(neither.stderr, /--all/);

    host = (await cli('hosts', 'unignore', 'web1', 'fix-1')) as HostRecord;
    assert.deepEqual(host.ignore, ['fix-10', 'fix-9']);
    assert.equal(((await cli('hosts', 'show', 'web1')) as HostRecord).desired?.level, 1);
    host = (await cli('hosts', 'unignore', 'web1', '--all')) as HostRecord;
    assert.deepEqual(host.ignore, []);
    const audit = (await cli('audit', '--action', 'host.update')) as AuditEntry[];
    assert.deepEqual(audit[0]?.details, { ignore: [] });
  });

  it('tokens create/list/revoke, audit, and hosts revoke', async () => {
    const t = (await cli('tokens', 'create', 'ci', '--role', 'viewer')) as TokenCreated;
    assert.equal(t.role, 'viewer');
    const asViewer = await runCli(['feeds', 'create', 'nope', '--server', s.url, '--token', t.token]);
    assert.notEqual(asViewer.code, 0);
    assert.match(asViewer.stderr, /FORBIDDEN/);
    await cli('tokens', 'revoke', t.id);
    const tokens = (await cli('tokens')) as { id: string; revokedAt: string | null }[];
    assert.ok(tokens.find((x) => x.id === t.id)?.revokedAt !== null);
    await cli('hosts', 'revoke', 'web1');
    const audit = (await cli('audit', '--limit', '50')) as AuditEntry[];
    for (const a of ['feed.create', 'feed.promote', 'pin.host', 'rollback.feed', 'token.revoke', 'host.revoke']) {
      assert.ok(
        audit.some((e) => e.action === a),
        a,
      );
    }
    const only = (await cli('audit', '--action', 'host.revoke')) as AuditEntry[];
    assert.deepEqual(
      only.map((e) => e.target),
      [hostId],
    );
  });
});
