import { chmodSync, copyFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { exec, execOk } from './exec.ts';

export interface InitramfsSpec {
  /** Extracted /lib/modules/<release> holding modules.dep. */
  modulesDir: string;
  /** Module names to include (their dependencies come along), in the order init loads them. */
  modules: string[];
  /** The guest's /init. */
  init: string;
  /** Guest path -> host file to copy. */
  files: Record<string, string>;
  /** Host executables to copy together with the shared libraries they link (guest path -> host path). */
  executables: Record<string, string>;
  out: string;
}

const BUSYBOX = '/bin/busybox';
const APPLETS = [
  'su',
  'pidof',
  'sh',
  'mount',
  'umount',
  'insmod',
  'rmmod',
  'lsmod',
  'cat',
  'echo',
  'ls',
  'sleep',
  'poweroff',
  'reboot',
  'ip',
  'stty',
  'mkdir',
  'cp',
  'rm',
  'mv',
  'dd',
  'grep',
  'sed',
  'head',
  'tail',
  'wc',
  'date',
  'sync',
  'kill',
  'ps',
  'env',
  'printf',
  'test',
  '[',
  'true',
  'false',
  'timeout',
  'setsid',
  'md5sum',
  'sha256sum',
  'dmesg',
  'uname',
  'tr',
  'cut',
  'find',
  'stat',
  'chmod',
  'touch',
  'seq',
  'awk',
  'xargs',
  'basename',
  'id',
  'truncate',
  'df',
];

/** Module names in load order (dependencies first), as file paths relative to modulesDir. */
export function moduleClosure(modulesDir: string, names: string[]): string[] {
  const deps = new Map<string, string[]>();
  for (const line of readFileSync(join(modulesDir, 'modules.dep'), 'utf8').split('\n')) {
    const [mod, rest] = line.split(':');
    if (!mod) continue;
    deps.set(mod, (rest ?? '').trim().split(/\s+/).filter(Boolean));
  }
  const byName = new Map<string, string>();
  for (const path of deps.keys()) byName.set(path.replace(/^.*\//, '').replace(/\.ko(\..*)?$/, ''), path);
  const order: string[] = [];
  const visit = (path: string): void => {
    if (order.includes(path)) return;
    for (const d of deps.get(path) ?? []) visit(d);
    order.push(path);
  };
  for (const n of names) {
    const path = byName.get(n) ?? byName.get(n.replace(/-/g, '_'));
    if (!path) throw new Error(`kernel module ${n} is not in ${modulesDir}/modules.dep`);
    visit(path);
  }
  return order;
}

async function sharedLibraries(binary: string): Promise<string[]> {
  const { stdout } = await execOk('ldd', [binary]);
  const libs: string[] = [];
  for (const line of stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) libs.push(m[1]);
  }
  return libs;
}

/** Builds an uncompressed newc cpio archive the kernel unpacks as its rootfs. */
export async function buildInitramfs(spec: InitramfsSpec): Promise<{ path: string; moduleOrder: string[] }> {
  spec = { ...spec, out: resolve(spec.out) };
  const root = `${spec.out}.d`;
  rmSync(root, { recursive: true, force: true });
  for (const d of ['bin', 'sbin', 'proc', 'sys', 'dev', 'tmp', 'etc', 'lib/modules', 'var/lib/livegraft', 'root']) {
    mkdirSync(join(root, d), { recursive: true });
  }
  copyFileSync(BUSYBOX, join(root, 'bin/busybox'));
  chmodSync(join(root, 'bin/busybox'), 0o755);
  for (const a of APPLETS) symlinkSync('busybox', join(root, 'bin', a));
  const put = (guest: string, host: string): void => {
    const dest = join(root, guest);
    mkdirSync(dirname(dest), { recursive: true });
    copyFileSync(host, dest);
  };
  for (const [guest, host] of Object.entries(spec.executables)) {
    put(guest, host);
    chmodSync(join(root, guest), 0o755);
    for (const lib of await sharedLibraries(host)) put(lib, lib);
  }
  for (const [guest, host] of Object.entries(spec.files)) put(guest, host);
  const moduleOrder = moduleClosure(spec.modulesDir, spec.modules);
  for (const rel of moduleOrder) put(join('lib/modules', rel.replace(/^.*\//, '')), join(spec.modulesDir, rel));
  writeFileSync(join(root, 'etc/modules.load'), moduleOrder.map((m) => m.replace(/^.*\//, '')).join('\n') + '\n');
  writeFileSync(join(root, 'init'), spec.init, { mode: 0o755 });
  const list = await execOk('find', ['.', '-print0'], { cwd: root });
  const r = await exec('sh', ['-c', `cpio --null -o -H newc -R 0:0 --quiet > '${spec.out}'`], {
    cwd: root,
    input: list.stdout,
    timeoutMs: 300_000,
  });
  if (r.code !== 0) throw new Error(`cpio failed: ${r.stderr}`);
  rmSync(root, { recursive: true, force: true });
  return { path: spec.out, moduleOrder };
}
