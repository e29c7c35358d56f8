import { createHash, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { kernelIdFromProcVersion, modinfoValue, parseModinfo } from '@livegraft/protocol';
import type { Clock } from '../../src/lib/clock.ts';
import { moduleToolError, type ModuleLoader } from '../../src/kernel/loader.ts';
import { elfNote } from './elf.ts';

export const RELEASE = '6.1.0-99-amd64';
export const PROC_VERSION =
  'Linux version 6.1.0-99-amd64 (debian-kernel@lists.debian.org) (gcc-12 (Debian 12.2.0-14) 12.2.0, ' +
  'GNU ld (GNU Binutils for Debian) 2.40) #1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2025-01-01)';
export const BUILD_ID = '0123456789abcdef0123456789abcdef01234567';

/** Another kernel build has another build-id: the default build's is BUILD_ID. */
export function buildIdFor(procVersion: string): string {
  return procVersion === PROC_VERSION ? BUILD_ID : createHash('sha1').update(procVersion).digest('hex');
}

interface Transition {
  name: string;
  target: 'patched' | 'unpatched';
  replaces: string[];
}

/**
 * A pretend kernel on a fake /sys + /proc tree. The loader and the clock are
 * its only inputs: insmod creates the patch's sysfs dirs and starts a
 * transition; each clock sleep is a scheduler tick that finishes transitions
 * (unless told to stall), honours writes to `enabled`, and, for an atomic
 * replace, removes the replaced patches' dirs while their modules stay loaded.
 */
export class FakeKernel {
  readonly sys: string;
  readonly proc: string;
  /** A plain file standing in for /dev/kmsg (records appended by tests). */
  readonly kmsg: string;
  readonly release: string;
  readonly procVersion: string;
  readonly id: string;
  /** Every insmod/rmmod, in order. */
  readonly calls: { op: 'load' | 'unload'; arg: string }[] = [];
  /** Writes of 0 to `enabled` that the kernel noticed. */
  readonly disables: string[] = [];
  stallTransitions = false;
  stallReverse = false;
  /** The next insmod fails with this tool stderr. */
  failNextLoad: string | undefined;
  now = Date.parse('2025-06-01T12:00:00Z');
  #transition: Transition | undefined;
  #enabledSeen = new Map<string, boolean>();

  /**
   * `attach: true` takes over a tree another FakeKernel (possibly in another
   * process) created, rebuilding the in-memory transition state from sysfs.
   */
  constructor(root: string, opts: { procVersion?: string; release?: string; attach?: boolean } = {}) {
    this.sys = join(root, 'sys');
    this.proc = join(root, 'proc');
    this.kmsg = join(root, 'dev/kmsg');
    this.release = opts.release ?? RELEASE;
    this.procVersion = opts.procVersion ?? PROC_VERSION;
    this.id = kernelIdFromProcVersion(this.procVersion);
    if (opts.attach === true && existsSync(join(this.proc, 'version'))) {
      this.#adopt();
      return;
    }
    mkdirSync(join(this.sys, 'kernel/livepatch'), { recursive: true });
    mkdirSync(join(this.sys, 'module/ext4'), { recursive: true });
    mkdirSync(join(root, 'dev'), { recursive: true });
    writeFileSync(this.kmsg, '6,1,1000,-;Linux version 6.1.0-99-amd64\n');
    mkdirSync(join(this.proc, 'sys/kernel'), { recursive: true });
    writeFileSync(join(this.proc, 'version'), `${this.procVersion}\n`);
    writeFileSync(join(this.proc, 'sys/kernel/osrelease'), `${this.release}\n`);
    writeFileSync(join(this.proc, 'sys/kernel/version'), '#1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1 (2025-01-01)\n');
    writeFileSync(join(this.proc, 'uptime'), '1234.56 4000.00\n');
    mkdirSync(join(this.proc, 'sys/kernel/random'), { recursive: true });
    writeFileSync(join(this.proc, 'sys/kernel/random/boot_id'), `${randomUUID()}\n`);
    writeFileSync(join(this.proc, 'cmdline'), 'BOOT_IMAGE=/vmlinuz root=/dev/vda1 ro quiet\n');
    writeFileSync(
      join(this.sys, 'kernel/notes'),
      Buffer.concat([
        elfNote('Xen', 6, Buffer.from('abcd')),
        elfNote('GNU', 3, Buffer.from(buildIdFor(this.procVersion), 'hex')),
        elfNote('Linux', 0x100, Buffer.from([1, 2, 3])),
      ]),
    );
    for (const [pid, comm] of [
      [1, 'init'],
      [321, 'sshd'],
    ] as const) {
      mkdirSync(join(this.proc, String(pid)), { recursive: true });
      writeFileSync(join(this.proc, String(pid), 'patch_state'), '-1\n');
      writeFileSync(join(this.proc, String(pid), 'comm'), `${comm}\n`);
    }
  }

  #adopt(): void {
    const dir = join(this.sys, 'kernel/livepatch');
    let names: string[] = [];
    try {
      names = readdirSync(dir);
    } catch {
      // none
    }
    const enabled = names.filter((n) => this.#read(join(dir, n, 'enabled')) === '1');
    for (const n of names) this.#enabledSeen.set(n, enabled.includes(n));
    const moving = names.find((n) => this.#read(join(dir, n, 'transition')) === '1');
    if (moving !== undefined) {
      this.#transition = enabled.includes(moving)
        ? { name: moving, target: 'patched', replaces: enabled.filter((n) => n !== moving) }
        : { name: moving, target: 'unpatched', replaces: [] };
    }
  }

  /** Appends words to the kernel command line (kill switch tests). */
  setCmdline(line: string): void {
    writeFileSync(join(this.proc, 'cmdline'), `${line}\n`);
  }

  get bootId(): string {
    return readFileSync(join(this.proc, 'sys/kernel/random/boot_id'), 'utf8').trim();
  }

  get env(): Record<string, string> {
    return { LIVEGRAFT_SYSFS: this.sys, LIVEGRAFT_PROC: this.proc, LIVEGRAFT_KMSG: this.kmsg };
  }

  #patchDir(name: string): string {
    return join(this.sys, 'kernel/livepatch', name);
  }

  #moduleDir(name: string): string {
    return join(this.sys, 'module', name);
  }

  #read(path: string): string | undefined {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  #setTaskStates(value: string): void {
    writeFileSync(join(this.proc, '1/patch_state'), `${value}\n`);
    writeFileSync(join(this.proc, '321/patch_state'), `${value}\n`);
  }

  #retire(name: string): void {
    rmSync(this.#patchDir(name), { recursive: true, force: true });
    this.#enabledSeen.delete(name);
    if (existsSync(this.#moduleDir(name))) writeFileSync(join(this.#moduleDir(name), 'refcnt'), '0\n');
  }

  moduleLoaded(name: string): boolean {
    return existsSync(this.#moduleDir(name));
  }

  patchEnabled(name: string): boolean | undefined {
    const v = this.#read(join(this.#patchDir(name), 'enabled'));
    return v === undefined ? undefined : v === '1';
  }

  /** One scheduler tick: what the kernel does between two agent polls. */
  tick(): void {
    for (const [name, was] of this.#enabledSeen) {
      const now = this.#read(join(this.#patchDir(name), 'enabled')) === '1';
      if (was && !now) {
        this.disables.push(name);
        this.#enabledSeen.set(name, false);
        const t = this.#transition;
        if (t?.name === name && t.target === 'patched') {
          // Reversing a patching transition: the replaced patches stay as they were.
          this.#transition = { name, target: 'unpatched', replaces: [] };
        } else {
          this.#transition = { name, target: 'unpatched', replaces: [] };
          writeFileSync(join(this.#patchDir(name), 'transition'), '1\n');
        }
      }
    }
    const t = this.#transition;
    if (t === undefined) return;
    const stuck = t.target === 'patched' ? this.stallTransitions : this.stallReverse;
    if (stuck) return;
    this.#transition = undefined;
    this.#setTaskStates('-1');
    rmSync(join(this.proc, '4242'), { recursive: true, force: true });
    if (t.target === 'patched') {
      writeFileSync(join(this.#patchDir(t.name), 'transition'), '0\n');
      for (const old of t.replaces) this.#retire(old);
    } else {
      this.#retire(t.name);
    }
  }

  readonly clock: Clock = {
    now: () => this.now,
    sleep: async (ms) => {
      this.now += ms;
      this.tick();
      await Promise.resolve();
    },
  };

  #fail(op: 'load' | 'unload', arg: string, stderr: string): never {
    throw moduleToolError(op, arg, { exitCode: 1, signal: null, stdout: '', stderr, timedOut: false });
  }

  readonly loader: ModuleLoader = {
    load: async (path) => {
      this.calls.push({ op: 'load', arg: path });
      if (this.failNextLoad !== undefined) {
        const stderr = this.failNextLoad;
        this.failNextLoad = undefined;
        this.#fail('load', path, stderr);
      }
      const info = parseModinfo(readFileSync(path));
      const name = modinfoValue(info, 'name') ?? 'unnamed';
      if (existsSync(this.#moduleDir(name))) this.#fail('load', path, `insmod: can't insert '${path}': File exists`);
      if (this.#transition !== undefined) {
        this.#fail('load', path, `insmod: can't insert '${path}': Device or resource busy`);
      }
      mkdirSync(this.#moduleDir(name), { recursive: true });
      // An enabled livepatch holds a reference on its own module.
      const livepatch = modinfoValue(info, 'livepatch') === 'Y';
      writeFileSync(join(this.#moduleDir(name), 'refcnt'), livepatch ? '1\n' : '0\n');
      if (!livepatch) return; // it would just run as plain kernel code
      const replaces = [...this.#enabledSeen].filter(([, on]) => on).map(([n]) => n);
      mkdirSync(join(this.#patchDir(name), 'vmlinux'), { recursive: true });
      writeFileSync(join(this.#patchDir(name), 'enabled'), '1\n');
      writeFileSync(join(this.#patchDir(name), 'transition'), '1\n');
      writeFileSync(join(this.#patchDir(name), 'vmlinux/patched'), '1\n');
      this.#enabledSeen.set(name, true);
      this.#transition = { name, target: 'patched', replaces };
      this.#setTaskStates('1');
      if (this.stallTransitions) {
        mkdirSync(join(this.proc, '4242'), { recursive: true });
        writeFileSync(join(this.proc, '4242/patch_state'), '0\n');
        writeFileSync(join(this.proc, '4242/comm'), 'kworker/busy\n');
        writeFileSync(join(this.proc, '4242/stack'), '[<0>] cmdline_proc_show+0x10/0x40\n[<0>] kthread+0xe8/0x110\n');
      }
    },
    unload: async (name) => {
      this.calls.push({ op: 'unload', arg: name });
      if (!existsSync(this.#moduleDir(name))) {
        this.#fail('unload', name, `rmmod: can't unload module '${name}': No such file or directory`);
      }
      if (this.#read(join(this.#moduleDir(name), 'refcnt')) !== '0') {
        this.#fail('unload', name, `rmmod: can't unload module '${name}': Resource temporarily unavailable`);
      }
      rmSync(this.#moduleDir(name), { recursive: true, force: true });
    },
  };

  loads(): string[] {
    return this.calls.filter((c) => c.op === 'load').map((c) => c.arg);
  }

  unloads(): string[] {
    return this.calls.filter((c) => c.op === 'unload').map((c) => c.arg);
  }
}
