// `livegraft tokens create --expires 90d` makes a token that expires, and `tokens list` shows when.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCli, startServerProcess, tempDir, type RunningServer } from './helpers.ts';

describe('livegraft tokens --expires', () => {
  let s: RunningServer;
  before(async () => {
    s = await startServerProcess(await tempDir('tokens'));
  });
  after(async () => s.stop());

  it('creates an expiring token and lists its expiry', async () => {
    const conn = ['--server', s.url, '--token', s.adminToken];
    const before = Date.now();
    const made = await runCli(['tokens', 'create', 'ci', '--role', 'viewer', '--expires', '90d', ...conn]);
    assert.equal(made.code, 0, made.stderr);
    const at = /expires (\S+Z):/.exec(made.stdout)?.[1];
    assert.ok(at !== undefined, made.stdout);
    const days = (Date.parse(at) - before) / 86_400_000;
    assert.ok(days > 89.9 && days < 90.1, `expires in ${days} days`);
    const list = await runCli(['tokens', 'list', ...conn]);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /EXPIRES/);
    assert.match(list.stdout, new RegExp(`ci +viewer .* ${at.replace(/\./g, '\\.')} +-`));
    const bad = await runCli(['tokens', 'create', 'x', '--role', 'viewer', '--expires', 'soon', ...conn]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /a duration such as 90d, 12w or 36h/);
  });
});
