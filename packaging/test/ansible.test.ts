/**
 * The Ansible role in deploy/ansible: ansible-lint (production profile), and
 * a real run of the playbook inside a minimal Debian 12 root against a real
 * server: it installs the package from the server and enrols, and a second
 * run changes nothing.
 */
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildAgentDeb, REPO } from '../agent-deb.ts';
import { APT_TIMEOUT_MS, chroot, chrootOk, freshDebianRoot, run } from '../debian-root.ts';
import { rootFingerprint } from '../../packages/server/src/routes/install.ts';
import { parseConfig } from '../../packages/server/src/config.ts';
import { startServer, type RunningServer } from '../../packages/server/src/server.ts';
import { FakeKernel } from '../../packages/agent/test/helpers/fake-kernel.ts';

const ANSIBLE = join(REPO, 'deploy/ansible');

describe('the Ansible role', () => {
  let dir: string;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lg-ansible-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('passes ansible-lint with the production profile, which catches a broken task', async () => {
    const r = await run('ansible-lint', ['--profile', 'production', 'playbook.yml', 'roles/livegraft_agent'], {
      cwd: ANSIBLE,
      timeoutMs: 300_000,
    });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const copy = join(dir, 'lint');
    cpSync(ANSIBLE, copy, { recursive: true });
    const tasks = join(copy, 'roles/livegraft_agent/tasks/main.yml');
    writeFileSync(tasks, readFileSync(tasks, 'utf8').replace('ansible.builtin.stat:', 'stat:'));
    const bad = await run('ansible-lint', ['--profile', 'production', 'playbook.yml', 'roles/livegraft_agent'], {
      cwd: copy,
      timeoutMs: 300_000,
    });
    assert.notEqual(bad.code, 0);
    assert.match(bad.stdout + bad.stderr, /fqcn/);
  });

  describe('run in a Debian 12 root against a real server', () => {
    let server: RunningServer;
    let root: string;
    before(async () => {
      const deb = await buildAgentDeb(dir);
      server = await startServer(
        parseConfig({
          dataDir: join(dir, 'server'),
          host: '127.0.0.1',
          port: 0,
          agentPackage: deb,
          logLevel: 'silent',
        }),
      );
      root = await freshDebianRoot(join(dir, 'debian'));
      await chrootOk(
        root,
        ['apt-get', 'install', '-y', '-q', '--no-install-recommends', 'ansible-core'],
        APT_TIMEOUT_MS,
      );
      new FakeKernel(join(root, 'fk'));
      cpSync(ANSIBLE, join(root, 'srv/ansible'), { recursive: true });
      cpSync(join(dir, 'server/registration-key'), join(root, 'srv/ansible/registration-key'));
      const fp = await rootFingerprint(server.tuf);
      writeFileSync(
        join(root, 'srv/ansible/inventory.ini'),
        [
          '[livegraft_agents]',
          'localhost ansible_connection=local ansible_python_interpreter=/usr/bin/python3',
          '[livegraft_agents:vars]',
          `livegraft_server=${server.url}`,
          `livegraft_root_sha256=${fp.sha256}`,
          'livegraft_registration_key_file=/srv/ansible/registration-key',
          'livegraft_agent_run_args="--interval 1800"',
          '',
        ].join('\n'),
      );
    });
    after(async () => {
      await server?.close();
    });

    // The chroot has no /proc: the agent reads the kernel's identity from a fake tree.
    const playbook = () =>
      chroot(root, ['sh', '-c', 'cd /srv/ansible && ansible-playbook -i inventory.ini playbook.yml'], APT_TIMEOUT_MS, {
        LIVEGRAFT_SYSFS: '/fk/sys',
        LIVEGRAFT_PROC: '/fk/proc',
        ANSIBLE_NOCOLOR: '1',
      });

    it('installs the package from the server and enrols the host, then a second run changes nothing', async () => {
      const first = await playbook();
      assert.equal(first.code, 0, first.stdout + first.stderr);
      const cfg = JSON.parse(readFileSync(join(root, 'etc/livegraft/agent.json'), 'utf8')) as { server: string };
      assert.equal(cfg.server, server.url);
      assert.match(
        readFileSync(join(root, 'etc/livegraft/agent.conf'), 'utf8'),
        /^LIVEGRAFT_RUN_ARGS=--interval 1800$/m,
      );
      const key = await chroot(root, ['test', '-e', '/root/.livegraft-registration-key']);
      assert.notEqual(key.code, 0, 'the registration key is removed after enrolment');
      const second = await playbook();
      assert.equal(second.code, 0, second.stdout + second.stderr);
      assert.match(second.stdout, /localhost\s+: ok=\d+\s+changed=0\s/);
    });
  });
});
