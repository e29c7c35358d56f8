/**
 * The server tarball runs from /opt/livegraft-server on its own Node.js, with
 * its unit accepted by systemd-analyze; the Dockerfile passes a Dockerfile
 * linter and compose.yaml wires the server to PostgreSQL.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { validate } from 'dockerfile-utils';
import { parse } from 'yaml';
import { buildAgentDeb, REPO, version } from '../agent-deb.ts';
import { runOk, run } from '../debian-root.ts';
import { buildServerTarball, SERVER_DIR } from '../server-tarball.ts';

/** Waits for the "listening at URL" log line, bounded. */
function listening(child: ChildProcess, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no listening line within ${timeoutMs} ms:\n${out}`)), timeoutMs);
    const onData = (b: Buffer): void => {
      out += b.toString('utf8');
      const m = /listening at (http:\/\/[0-9.:]+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`the server exited (${code}) before listening:\n${out}`));
    });
  });
}

describe('the server tarball', () => {
  let dir: string;
  let opt: string;
  let child: ChildProcess | undefined;
  let url: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lg-srv-'));
    const deb = await buildAgentDeb(dir);
    const tarball = await buildServerTarball(dir, deb);
    assert.equal(tarball, join(dir, `livegraft-server_${version()}_linux-x64.tar.gz`));
    opt = join(dir, 'opt');
    mkdirSync(opt);
    await runOk('tar', ['-C', opt, '-xzf', tarball]);
    // Started from outside the repository: nothing but the tarball's files.
    child = spawn(join(opt, SERVER_DIR, 'bin/livegraft-server'), ['--data-dir', join(dir, 'data'), '--port', '0'], {
      cwd: dir,
      env: { PATH: '/usr/bin:/bin' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    url = await listening(child, 120_000);
  });
  after(() => {
    child?.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs on the Node.js it ships, with the CVE dataset, the dashboard and the agent package', async () => {
    assert.deepEqual(await (await fetch(`${url}/healthz`)).json(), { ok: true });
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const sh = await fetch(`${url}/install.sh`);
    assert.equal(sh.status, 200);
    const deb = await fetch(`${url}/install/livegraft-agent.deb`);
    assert.equal(deb.status, 200);
    assert.equal(deb.headers.get('content-type'), 'application/vnd.debian.binary-package');
    assert.equal((await deb.arrayBuffer()).byteLength > 50_000, true);
  });

  it('systemd-analyze verify accepts livegraft-server.service at /opt', async () => {
    const root = join(dir, 'verify-root');
    mkdirSync(join(root, 'opt'), { recursive: true });
    cpSync('/lib/systemd/system', join(root, 'lib/systemd/system'), { recursive: true });
    cpSync(join(opt, SERVER_DIR, 'bin'), join(root, 'opt', SERVER_DIR, 'bin'), { recursive: true });
    cpSync(
      join(opt, SERVER_DIR, 'share/livegraft-server.service'),
      join(root, 'lib/systemd/system/livegraft-server.service'),
    );
    const r = await run('systemd-analyze', ['verify', `--root=${root}`, '--man=no', 'livegraft-server.service']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr.trim(), '');
    const unit = readFileSync(join(root, 'lib/systemd/system/livegraft-server.service'), 'utf8');
    for (const line of [
      'User=livegraft',
      'StateDirectory=livegraft-server',
      'Restart=on-failure',
      'NoNewPrivileges=yes',
      'ProtectSystem=strict',
      'CapabilityBoundingSet=',
    ]) {
      assert.match(unit, new RegExp(`^${line}$`, 'm'), line);
    }
  });

  it('the Dockerfile passes the Dockerfile linter and runs the tarball', () => {
    const text = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
    const problems = validate(text);
    assert.deepEqual(
      problems.map((p) => `${p.range.start.line + 1}: ${p.message}`),
      [],
    );
    assert.match(text, /npm run package/);
    assert.match(text, /^USER livegraft$/m);
    assert.match(text, /^ENTRYPOINT \["\/opt\/livegraft-server\/bin\/livegraft-server"/m);
    // A broken Dockerfile is caught.
    assert.ok(validate('FROM debian\nEXPOSE port\nENTRYPOINT\n').length > 0);
  });

  it('compose.yaml runs the image against PostgreSQL with persistent volumes', () => {
    const c = parse(readFileSync(join(REPO, 'compose.yaml'), 'utf8')) as {
      services: Record<string, Record<string, unknown>>;
      volumes: Record<string, unknown>;
    };
    const server = c.services['server'];
    const db = c.services['db'];
    assert.ok(server && db);
    assert.equal(server['build'], '.');
    assert.match(String((db['image'] as string) ?? ''), /^postgres:/);
    const env = server['environment'] as Record<string, string>;
    assert.match(env['LIVEGRAFT_DATABASE_URL'] ?? '', /^postgres:\/\/livegraft:.*@db:5432\/livegraft$/);
    assert.deepEqual(server['depends_on'], { db: { condition: 'service_healthy' } });
    assert.deepEqual(Object.keys(c.volumes).sort(), ['db', 'server']);
  });
});
