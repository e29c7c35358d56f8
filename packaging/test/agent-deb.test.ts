/**
 * The agent's Debian package, checked with Debian's own tools: lintian,
 * systemd-analyze, and an install, remove and purge in a minimal Debian 12
 * root, where the agent runs on Debian's nodejs (18).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { buildAgentDeb, HELPER_PATH, version } from '../agent-deb.ts';
import { APT_TIMEOUT_MS, chroot, chrootOk, freshDebianRoot, run } from '../debian-root.ts';
import { FakeKernel } from '../../packages/agent/test/helpers/fake-kernel.ts';
import { FakeServer, REGISTRATION_KEY } from '../../packages/agent/test/helpers/fake-server.ts';
import { makePatch } from '../../packages/agent/test/helpers/patches.ts';

const UNITS = ['livegraft-agent.service', 'livegraft-agent-boot.service'];

describe('the livegraft-agent Debian package', () => {
  let dir: string;
  let deb: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lg-deb-'));
    deb = await buildAgentDeb(dir);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is named for its version and holds the agent, units, conffile, state dir, man page and completion', async () => {
    assert.equal(deb, join(dir, `livegraft-agent_${version()}_amd64.deb`));
    const list = (await run('dpkg-deb', ['-c', deb])).stdout;
    for (const p of [
      './usr/bin/livegraft-agent',
      './lib/systemd/system/livegraft-agent.service',
      './lib/systemd/system/livegraft-agent-boot.service',
      './etc/livegraft/agent.conf',
      './var/lib/livegraft/',
      './usr/share/man/man8/livegraft-agent.8.gz',
      './usr/share/bash-completion/completions/livegraft-agent',
      './usr/share/zsh/vendor-completions/_livegraft-agent',
      `./${HELPER_PATH}`,
    ]) {
      assert.match(list, new RegExp(` ${p.replace(/[.]/g, '\\.')}$`, 'm'), p);
    }
    assert.match(list, /^-rwxr-xr-x root\/root .* \.\/usr\/bin\/livegraft-agent$/m);
    const field = async (f: string) => (await run('dpkg-deb', ['-f', deb, f])).stdout.trim();
    assert.equal(await field('Depends'), 'nodejs (>= 18), kmod, ca-certificates');
    assert.equal(await field('Architecture'), 'amd64');
    assert.match(await field('Built-Using'), /^glibc \(= [0-9][^)]*\)$/);
    assert.equal((await run('dpkg-deb', ['-I', deb, 'conffiles'])).stdout, '/etc/livegraft/agent.conf\n');
  });

  it('ships the user-space helper built from source: static, stripped, hardened, and it runs', async () => {
    const root = join(dir, 'unpacked');
    await run('dpkg-deb', ['-x', deb, root]);
    const helper = join(root, HELPER_PATH);
    assert.equal(lstatSync(helper).mode & 0o777, 0o755);
    const file = (await run('file', ['-b', helper])).stdout;
    assert.match(file, /ELF 64-bit LSB .*x86-64/);
    assert.match(file, /static-pie linked/);
    assert.match(file, /, stripped/);
    const dyn = (await run('readelf', ['-d', '-l', helper])).stdout;
    assert.doesNotMatch(dyn, /NEEDED|INTERP/, 'no shared library and no loader');
    assert.match(dyn, /GNU_RELRO/);
    assert.match(dyn, /BIND_NOW|FLAGS.*NOW/);
    // It starts on its own (no loader, no library) and answers.
    const r = await run(helper, ['version']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { ok: boolean; op: string }).op, 'version');
    const overrides = readFileSync(join(root, 'usr/share/lintian/overrides/livegraft-agent'), 'utf8');
    assert.match(overrides, new RegExp(`statically-linked-binary \\[${HELPER_PATH}\\]`));
  });

  it('lintian reports no errors and no warnings', async () => {
    const r = await run('lintian', ['--fail-on', 'error,warning', deb], { timeoutMs: 600_000 });
    assert.equal(r.code, 0, `lintian exited ${r.code}:\n${r.stdout}${r.stderr}`);
    assert.doesNotMatch(r.stdout, /^[EW]: /m);
  });

  it('systemd-analyze verify accepts both units, and would reject a broken one', async () => {
    // A root with the package's files and the host's own systemd units (the targets they name).
    const root = join(dir, 'verify-root');
    cpSync('/lib/systemd/system', join(root, 'lib/systemd/system'), { recursive: true, dereference: false });
    await run('dpkg-deb', ['-x', deb, root]);
    const verify = () => run('systemd-analyze', ['verify', `--root=${root}`, '--man=no', ...UNITS]);
    const ok = await verify();
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stderr.trim(), '');
    const unit = join(root, 'lib/systemd/system/livegraft-agent.service');
    writeFileSync(unit, readFileSync(unit, 'utf8').replace('Type=exec', 'Type=sometimes'));
    const bad = await verify();
    assert.match(bad.stderr, /livegraft-agent\.service.*Type|service type/);
  });

  it('the daemon unit keeps module loading and sysfs writes possible while hardened', () => {
    const unit = readFileSync(join(dir, 'livegraft-agent.tree/lib/systemd/system/livegraft-agent.service'), 'utf8');
    assert.match(unit, /^CapabilityBoundingSet=.*CAP_SYS_MODULE/m);
    assert.match(unit, /^SystemCallFilter=.*@module/m);
    // The user-space helper traces the processes it patches.
    assert.match(unit, /^SystemCallFilter=.*@debug/m);
    assert.match(unit, /^CapabilityBoundingSet=.*CAP_SYS_PTRACE/m);
    assert.match(unit, /^ProtectSystem=strict$/m);
    assert.match(unit, /^NoNewPrivileges=yes$/m);
    assert.match(unit, /^DeviceAllow=\/dev\/kmsg r$/m);
    for (const forbidden of [
      'ProtectKernelModules',
      'ProtectKernelTunables',
      'PrivateDevices',
      'MemoryDenyWriteExecute',
    ]) {
      assert.doesNotMatch(unit, new RegExp(`^${forbidden}=`, 'm'), forbidden);
    }
    const boot = readFileSync(
      join(dir, 'livegraft-agent.tree/lib/systemd/system/livegraft-agent-boot.service'),
      'utf8',
    );
    assert.match(boot, /^Type=oneshot$/m);
    assert.match(boot, /^DefaultDependencies=no$/m);
    assert.match(boot, /^Before=network-pre\.target/m);
    assert.match(boot, /^ExecStart=\/usr\/bin\/livegraft-agent boot$/m);
  });

  describe('in a minimal Debian 12 root (debootstrap)', () => {
    let root: string;
    before(async () => {
      root = await freshDebianRoot(join(dir, 'debian'));
      cpSync(deb, join(root, 'tmp/agent.deb'));
      // systemd too, so that the units can be checked where they are installed.
      await chrootOk(
        root,
        ['apt-get', 'install', '-y', '-q', '--no-install-recommends', '/tmp/agent.deb', 'systemd'],
        APT_TIMEOUT_MS,
      );
    });

    it('installs with Debian nodejs 18 and puts files, units and the conffile in place', async () => {
      const node = await chrootOk(root, ['node', '--version']);
      assert.match(node.stdout, /^v18\./);
      const v = await chrootOk(root, ['livegraft-agent', '--version']);
      assert.equal(v.stdout.trim(), version());
      assert.ok(lstatSync(join(root, 'var/lib/livegraft')).isDirectory());
      assert.match(readFileSync(join(root, 'etc/livegraft/agent.conf'), 'utf8'), /^#LIVEGRAFT_RUN_ARGS=/m);
      const conff = await chrootOk(root, ['dpkg-query', '-W', '-f=${Conffiles}', 'livegraft-agent']);
      assert.match(conff.stdout, /^ \/etc\/livegraft\/agent\.conf [0-9a-f]{32}$/m);
      for (const u of UNITS) {
        assert.ok(lstatSync(join(root, 'etc/systemd/system/multi-user.target.wants', u)).isSymbolicLink(), u);
      }
      const verify = await run('systemd-analyze', ['verify', `--root=${root}`, '--man=no', ...UNITS]);
      assert.equal(verify.code, 0, verify.stderr);
      assert.equal(verify.stderr.trim(), '');
      const man = await chrootOk(root, ['sh', '-c', 'zcat /usr/share/man/man8/livegraft-agent.8.gz']);
      assert.match(man.stdout, /^\.SH FILES$/m);
    });

    it('runs on Debian nodejs 18: enrol pins the root, update verifies through TUF and reaches insmod, boot, status, run --once', async () => {
      const server = await new FakeServer().start();
      try {
        const k = new FakeKernel(join(root, 'fk'));
        // The fake kernel tree as the chroot sees it, and stand-in module tools first on PATH:
        // this must never touch the real kernel.
        const env = {
          LIVEGRAFT_SYSFS: '/fk/sys',
          LIVEGRAFT_PROC: '/fk/proc',
          LIVEGRAFT_KMSG: '/fk/dev/kmsg',
          PATH: '/fk/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        };
        mkdirSync(join(root, 'fk/bin'), { recursive: true });
        for (const tool of ['insmod', 'rmmod']) {
          writeFileSync(
            join(root, 'fk/bin', tool),
            `#!/bin/sh\necho "${tool}: ERROR: could not insert module $1: Invalid module format" >&2\nexit 1\n`,
          );
          chmodSync(join(root, 'fk/bin', tool), 0o755);
        }
        const agent = (args: string[]) => chroot(root, ['livegraft-agent', ...args], 120_000, env);
        const served = Buffer.from(await (await fetch(`${server.url}/tuf/metadata/1.root.json`)).arrayBuffer());
        const sha256 = createHash('sha256').update(served).digest('hex');
        writeFileSync(join(root, 'root/key'), REGISTRATION_KEY);
        const e = await agent(['enroll', '--server', server.url, '--key-file', '/root/key', '--root-sha256', sha256]);
        assert.equal(e.code, 0, e.stderr);
        assert.match(e.stdout, /pinned TUF root version 1/);
        assert.equal(lstatSync(join(root, 'etc/livegraft/agent.json')).mode & 0o777, 0o600);
        server.publish(k.id, makePatch(k, 1));
        const u = await agent(['update']);
        assert.equal(u.code, 4, u.stderr);
        assert.match(u.stderr, /^error \[KERNEL_LOAD_ENOEXEC\]/m);
        assert.ok(
          server.tufRequests.some((f) => f.startsWith('targets/')),
          'module fetched through TUF',
        );
        // Offline: boot takes the verified level from the cache to insmod again.
        const b = await agent(['boot']);
        assert.equal(b.code, 4, b.stderr);
        assert.match(b.stderr, /re-applying level 1[\s\S]*error \[KERNEL_LOAD_ENOEXEC\]/);
        const s = await agent(['status', '--json']);
        assert.equal((JSON.parse(s.stdout) as { kernel: { id: string } }).kernel.id, k.id);
        const once = await agent(['run', '--once']);
        assert.ok(once.code === 0 || once.code === 4, once.stderr);
        assert.match(once.stderr, /"msg"|"level"/);
        assert.ok(server.checkins.length >= 2, 'the daemon checked in');
      } finally {
        await server.stop();
      }
    });

    it('removes, keeping the changed conffile, then purges everything', async () => {
      const conf = join(root, 'etc/livegraft/agent.conf');
      writeFileSync(conf, `${readFileSync(conf, 'utf8')}LIVEGRAFT_RUN_ARGS=--interval 600\n`);
      writeFileSync(join(root, 'var/lib/livegraft/state.json'), '{}\n');
      await chrootOk(root, ['apt-get', 'remove', '-y', '-q', 'livegraft-agent'], APT_TIMEOUT_MS);
      assert.ok(!existsSync(join(root, 'usr/bin/livegraft-agent')));
      assert.ok(!existsSync(join(root, 'lib/systemd/system/livegraft-agent.service')));
      assert.match(readFileSync(conf, 'utf8'), /^LIVEGRAFT_RUN_ARGS=--interval 600$/m);
      const st = await chrootOk(root, ['dpkg-query', '-W', '-f=${db:Status-Abbrev}', 'livegraft-agent']);
      assert.equal(st.stdout.trim(), 'rc');

      await chrootOk(root, ['apt-get', 'purge', '-y', '-q', 'livegraft-agent'], APT_TIMEOUT_MS);
      for (const p of ['etc/livegraft', 'var/lib/livegraft']) assert.ok(!existsSync(join(root, p)), p);
      for (const u of UNITS) {
        assert.ok(!existsSync(join(root, 'etc/systemd/system/multi-user.target.wants', u)), u);
        assert.ok(!existsSync(join(root, 'etc/systemd/system', u)), `${u} mask`);
      }
      const gone = await chroot(root, ['dpkg-query', '-W', 'livegraft-agent']);
      assert.notEqual(gone.code, 0);
    });
  });
});
