/**
 * GET /install.sh from a real server, run the documented way
 * (curl ... | sh -s -- --key-file F --root-sha256 HEX) as root in a minimal
 * Debian 12 root: it refuses a wrong fingerprint before installing anything,
 * and with the fingerprint `livegraft keys fingerprint` prints it installs
 * the agent package from the server and enrols with that root pinned.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { buildAgentDeb, REPO } from '../agent-deb.ts';
import { APT_TIMEOUT_MS, chroot, chrootOk, freshDebianRoot, run } from '../debian-root.ts';
import { parseConfig } from '../../packages/server/src/config.ts';
import { startServer, type RunningServer } from '../../packages/server/src/server.ts';
import { FakeKernel } from '../../packages/agent/test/helpers/fake-kernel.ts';

describe('install.sh served by the server', () => {
  let dir: string;
  let server: RunningServer;
  let root: string;
  const logLines: string[] = [];
  let script: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lg-install-'));
    const deb = await buildAgentDeb(dir);
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
          done();
        },
      }),
    );
    server = await startServer(
      parseConfig({ dataDir: join(dir, 'server'), host: '127.0.0.1', port: 0, agentPackage: deb }),
      { logger },
    );
    const res = await fetch(`${server.url}/install.sh`);
    assert.equal(res.status, 200);
    script = await res.text();
    root = await freshDebianRoot(join(dir, 'debian'));
    // What the documented one-liner needs on the host: curl.
    await chrootOk(root, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'curl'], APT_TIMEOUT_MS);
    new FakeKernel(join(root, 'fk'));
    writeFileSync(join(root, 'root/registration-key'), readFileSync(join(dir, 'server/registration-key')));
  });
  after(async () => {
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const fingerprint = async (): Promise<string> => {
    const r = await run(
      process.execPath,
      ['--import', 'tsx', join(REPO, 'packages/cli/src/bin.ts'), 'keys', 'fingerprint', '--server', server.url],
      { cwd: REPO },
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /TUF root version 1 /);
    return r.stdout.trim();
  };
  const install = (hex: string) =>
    chroot(
      root,
      [
        'sh',
        '-c',
        `curl -fsSL ${server.url}/install.sh | sh -s -- --key-file /root/registration-key --root-sha256 ${hex}`,
      ],
      APT_TIMEOUT_MS,
      // The chroot has no /proc: enrolment reads the kernel's identity from a fake tree.
      { LIVEGRAFT_SYSFS: '/fk/sys', LIVEGRAFT_PROC: '/fk/proc' },
    );

  it('is a POSIX sh script that shellcheck accepts', async () => {
    assert.match(script, /^#!\/bin\/sh\n/);
    assert.ok(script.includes(`server='${server.url}'`));
    const path = join(dir, 'install.sh');
    writeFileSync(path, script);
    const r = await run('shellcheck', ['--shell=sh', path]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const dash = await run('dash', ['-n', path]);
    assert.equal(dash.code, 0, dash.stderr);
  });

  it('livegraft keys fingerprint and the start-up log give the SHA-256 of the served root', async () => {
    const hex = await fingerprint();
    assert.match(hex, /^[0-9a-f]{64}$/);
    const served = Buffer.from(await (await fetch(`${server.url}/tuf/metadata/1.root.json`)).arrayBuffer());
    assert.equal(hex, createHash('sha256').update(served).digest('hex'));
    assert.ok(
      logLines.some((l) => l.includes(`"rootSha256":"${hex}"`)),
      'the server logged the fingerprint at start',
    );
  });

  it('refuses a root that does not match, before installing or sending anything', async () => {
    const r = await install('0'.repeat(64));
    assert.equal(r.code, 1, r.stdout + r.stderr);
    assert.match(r.stderr, /refusing to install and enrol/);
    assert.ok(!existsSync(join(root, 'usr/bin/livegraft-agent')));
    assert.ok(!existsSync(join(root, 'etc/livegraft/agent.json')));
  });

  it('refuses without --root-sha256', async () => {
    const r = await chroot(root, [
      'sh',
      '-c',
      `curl -fsSL ${server.url}/install.sh | sh -s -- --key-file /root/registration-key`,
    ]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /--root-sha256 HEX is required/);
  });

  it('with the right fingerprint installs the package from the server and enrols with that root pinned', async () => {
    const hex = await fingerprint();
    const r = await install(hex.toUpperCase());
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /matches/);
    const v = await chrootOk(root, ['livegraft-agent', '--version']);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
    const cfg = JSON.parse(readFileSync(join(root, 'etc/livegraft/agent.json'), 'utf8')) as {
      server: string;
      hostId: string;
    };
    assert.equal(cfg.server, server.url);
    assert.ok(cfg.hostId.length > 0);
    const pinned = JSON.parse(readFileSync(join(root, 'var/lib/livegraft/tuf/metadata/root.json'), 'utf8')) as {
      signed: { version: number };
    };
    assert.equal(pinned.signed.version, 1);
    const token = readFileSync(join(dir, 'server/admin-token'), 'utf8').trim();
    const hosts = await fetch(`${server.url}/api/v1/hosts`, { headers: { authorization: `Bearer ${token}` } });
    assert.equal(hosts.status, 200);
    assert.ok(JSON.stringify(await hosts.json()).includes(cfg.hostId), 'the server has the host');
  });
});
