import { copyFile, mkdir, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError, modinfoValue, parseModinfo } from '@livegraft/protocol';
import { newcArchive, type CpioEntry } from '../kernel/initramfs.ts';
import { isStaticElf } from '../kernel/kallsyms.ts';
import { findProgram } from '../kernel/tools.ts';
import { moduleFileIndex } from '../patch/factory.ts';
import type { ProcessRunner } from '../runner.ts';
import { GUEST_READY_MARKER } from './guest.ts';
import { GUEST_TRIGGER_DIR, TRIGGER_UID } from './triggers.ts';

/** What goes into the validation guest's initramfs. */
export interface GuestImageInput {
  release: string;
  /** The image's /lib/modules/<release>. */
  modulesDir: string;
  /** Modules the guest's modprobe must find (the level's targets, the triggers' needs); dependencies come along. */
  modules: readonly string[];
  /** The JavaScript runtime the agent runs on, and the agent bundle. */
  node: string;
  agentBundle: string;
  /** Guest path -> host file (level manifests and modules, static trigger and workload binaries). */
  files: Readonly<Record<string, string>>;
  workDir: string;
  run: ProcessRunner;
}

const BUSYBOX_APPLETS = [
  'sh', 'mount', 'umount', 'cat', 'echo', 'ls', 'sleep', 'poweroff', 'mkdir', 'cp', 'rm', 'grep', 'sed', 'head',
  'tail', 'wc', 'date', 'sync', 'kill', 'ps', 'env', 'printf', 'test', '[', 'true', 'false', 'timeout', 'setsid',
  'dmesg', 'uname', 'tr', 'cut', 'stty', 'su', 'id', 'awk', 'seq', 'ip',
]; // prettier-ignore

/** Decompressed node is ~110 MB; the archive is held in memory once. */
const MAX_IMAGE_BYTES = 512 * 1024 * 1024;
const TOOL_TIMEOUT_MS = 120_000;

/**
 * /init: drivers through kmod's modprobe (so later autoloads work the same
 * way), the agent's state on tmpfs, then a shell on the serial console that
 * is restarted if it ever exits (PID 1 must not exit, or the kernel panics).
 */
export const VALIDATION_INIT = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LIVEGRAFT_STATE_DIR=/var/lib/livegraft
export LIVEGRAFT_CONFIG=/var/lib/livegraft/agent.json
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t tmpfs state /var/lib/livegraft
echo /sbin/modprobe > /proc/sys/kernel/modprobe
ip link set lo up 2>/dev/null
export PS1=''
stty -echo
echo ${GUEST_READY_MARKER}
while :; do
  sh 2>&1
  echo "livegraft-validate: console shell exited, restarting it" > /dev/kmsg
  stty -echo 2>/dev/null
  sleep 0.2
done
`;

async function tool(run: ProcessRunner, cmd: string, args: string[]): Promise<string> {
  const r = await run(cmd, args, { timeoutMs: TOOL_TIMEOUT_MS, maxOutputBytes: 4 * 1024 * 1024 });
  if (r.code !== 0)
    throw new LivegraftError('VALIDATION_IMAGE_FAILED', `${cmd} ${args.join(' ')} failed: ${r.stderr.slice(-1000)}`);
  return r.stdout;
}

/** The shared libraries a dynamic executable loads, from ldd. */
export function parseLdd(text: string): string[] {
  const libs: string[] = [];
  for (const line of text.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1] !== undefined) libs.push(m[1]);
  }
  return libs;
}

/** Module names in load order (dependencies first), from each module's modinfo `depends`. */
export async function moduleClosure(modulesDir: string, names: readonly string[]): Promise<string[]> {
  const index = await moduleFileIndex(modulesDir);
  const order: string[] = [];
  const seen = new Set<string>();
  const visit = async (raw: string, depth: number): Promise<void> => {
    const name = raw.replaceAll('-', '_');
    if (seen.has(name)) return;
    seen.add(name);
    if (depth > 32) throw new LivegraftError('VALIDATION_IMAGE_FAILED', `module dependencies of ${name} loop`);
    const file = index.get(name);
    if (file === undefined) return; // built into the kernel, or not shipped: modprobe says which later.
    const deps = modinfoValue(parseModinfo(await readFile(file)), 'depends') ?? '';
    for (const d of deps.split(',').filter((x) => x !== '')) await visit(d, depth + 1);
    order.push(path.relative(modulesDir, file));
  };
  for (const n of names) await visit(n, 0);
  return order;
}

async function walk(dir: string, depth = 0): Promise<string[]> {
  if (depth > 16) return [];
  const out: string[] = [];
  for (const e of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...(await walk(p, depth + 1)));
    else out.push(p);
  }
  return out;
}

/**
 * Builds the validation guest's initramfs: busybox, kmod's modprobe with the
 * named modules and their indexes, the runtime with its libraries, the agent,
 * and the given files. Returns the archive's path.
 */
export async function buildGuestImage(input: GuestImageInput): Promise<string> {
  const busybox = await findProgram('busybox');
  if (busybox === undefined || !(await isStaticElf(busybox)))
    throw new LivegraftError('TOOLCHAIN_MISSING', 'a static busybox is needed: apt-get install busybox-static');
  const kmod = await findProgram('kmod');
  const depmod =
    (await findProgram('depmod')) ?? (await findProgram('/usr/sbin/depmod')) ?? (await findProgram('/sbin/depmod'));
  if (kmod === undefined || depmod === undefined)
    throw new LivegraftError('TOOLCHAIN_MISSING', 'kmod and depmod are needed: apt-get install kmod');

  const entries = new Map<string, CpioEntry>();
  const dir = (p: string): void => {
    const parts = p.split('/');
    for (let i = 1; i <= parts.length; i++) {
      const d = parts.slice(0, i).join('/');
      if (!entries.has(d)) entries.set(d, { name: d, mode: 0o040755 });
    }
  };
  const file = async (guest: string, host: string, mode?: number): Promise<void> => {
    const name = guest.replace(/^\/+/, '');
    dir(path.posix.dirname(name));
    const st = await stat(host);
    entries.set(name, {
      name,
      mode: 0o100000 | (mode ?? (st.mode & 0o111 ? 0o755 : 0o644)),
      data: await readFile(host),
    });
  };
  const text = (guest: string, content: string, mode = 0o644): void => {
    const name = guest.replace(/^\/+/, '');
    dir(path.posix.dirname(name));
    entries.set(name, { name, mode: 0o100000 | mode, data: Buffer.from(content) });
  };
  const link = (guest: string, target: string): void => {
    const name = guest.replace(/^\/+/, '');
    dir(path.posix.dirname(name));
    entries.set(name, { name, mode: 0o120777, data: Buffer.from(target) });
  };

  for (const d of ['proc', 'sys', 'dev', 'tmp', 'root', 'var/lib/livegraft', 'usr/bin', 'sbin']) dir(d);
  await file('/bin/busybox', busybox, 0o755);
  for (const a of BUSYBOX_APPLETS) link(`/bin/${a}`, 'busybox');
  for (const exe of [input.node, kmod]) {
    for (const lib of parseLdd(await tool(input.run, 'ldd', [exe]))) await file(lib, lib, 0o755);
  }
  await file('/usr/bin/node', input.node, 0o755);
  await file('/sbin/kmod', kmod, 0o755);
  for (const t of ['modprobe', 'insmod', 'rmmod', 'lsmod', 'modinfo']) link(`/sbin/${t}`, 'kmod');
  await file('/opt/livegraft/livegraft-agent.mjs', input.agentBundle, 0o644);
  text('/bin/livegraft-agent', '#!/bin/sh\nexec /usr/bin/node /opt/livegraft/livegraft-agent.mjs "$@"\n', 0o755);
  text('/etc/passwd', `root:x:0:0:root:/root:/bin/sh\nuser:x:${TRIGGER_UID}:${TRIGGER_UID}:user:/tmp:/bin/sh\n`);
  text('/etc/group', `root:x:0:\nuser:x:${TRIGGER_UID}:\n`);
  dir(GUEST_TRIGGER_DIR.slice(1));

  // The modules the guest may load, with depmod's indexes built for just them.
  const stage = path.join(input.workDir, 'modtree');
  await rm(stage, { recursive: true, force: true });
  const dest = path.join(stage, 'lib', 'modules', input.release);
  await mkdir(dest, { recursive: true });
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
    await copyFile(path.join(input.modulesDir, f), path.join(dest, f)).catch(() => undefined);
  }
  for (const rel of await moduleClosure(input.modulesDir, input.modules)) {
    await mkdir(path.dirname(path.join(dest, rel)), { recursive: true });
    await copyFile(path.join(input.modulesDir, rel), path.join(dest, rel));
  }
  await tool(input.run, depmod, ['-b', stage, input.release]);
  for (const f of await walk(stage)) await file(`/${path.relative(stage, f)}`, f, 0o644);

  for (const [guest, host] of Object.entries(input.files)) await file(guest, host);
  text('/init', VALIDATION_INIT, 0o755);

  const archive = newcArchive([...entries.values()]);
  if (archive.length > MAX_IMAGE_BYTES)
    throw new LivegraftError('VALIDATION_IMAGE_FAILED', `the guest image would be ${archive.length} bytes`);
  const out = path.join(input.workDir, 'initrd.cpio');
  await writeFile(out, archive);
  return out;
}
