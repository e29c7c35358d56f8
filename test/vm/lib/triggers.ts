import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { execOk } from './exec.ts';
import type { Guest } from './guest.ts';
import { buildInitramfs, moduleClosure } from './initramfs.ts';
import type { KernelImage } from './kernel.ts';
import { fixSpecValidator } from '@livegraft/protocol';
import {
  GUEST_TRIGGER_DIR,
  TRIGGER_UID,
  compileTrigger,
  qemuArgsOf,
  readTrigger,
  triggerCommand,
  type TriggerSpec,
} from '../../../packages/builder/src/validate/triggers.ts';
import { spawnRunner } from '../../../packages/builder/src/runner.ts';

/** What a catalogue trigger printed: VULNERABLE, FIXED, or why it could not tell. */
export type TriggerVerdict = 'VULNERABLE' | 'FIXED' | string;

export { GUEST_TRIGGER_DIR, TRIGGER_UID, type TriggerSpec };
const TRIGGER_TIMEOUT_MS = 60_000;
const TRIGGER_TIMEOUT_SEC = 50;
const VERDICT = /^(VULNERABLE|FIXED|UNSUPPORTED: .*)$/;

/** Reads the trigger of each fix directory that has one (the builder's reading of fix.json, trigger.modules, qemu.json). */
export async function readTriggers(fixDirs: string[]): Promise<TriggerSpec[]> {
  const out: TriggerSpec[] = [];
  for (const fixDir of fixDirs) {
    const t = await readTrigger(
      fixDir,
      fixSpecValidator.parse(JSON.parse(readFileSync(join(fixDir, 'fix.json'), 'utf8'))),
    );
    if (t !== undefined) out.push(t);
  }
  return out;
}

/** Compiles every trigger with `gcc -static -O2` into workDir; returns guest path -> host binary. */
export async function compileTriggers(triggers: TriggerSpec[], workDir: string): Promise<Record<string, string>> {
  const bins: Record<string, string> = {};
  for (const t of triggers) bins[`${GUEST_TRIGGER_DIR}/${t.fixId}`] = await compileTrigger(spawnRunner, t, workDir);
  return bins;
}

/** QEMU arguments the triggers need (see the builder's qemuArgsOf). */
export async function qemuArgsFor(triggers: TriggerSpec[], workDir: string): Promise<string[]> {
  const args: string[] = [];
  for (const t of triggers) args.push(...(await qemuArgsOf(spawnRunner, t, resolve(workDir))));
  return args;
}

function walk(dir: string): string[] {
  const files: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files.push(...walk(p));
    else files.push(p);
  }
  return files;
}

/**
 * Lays out the given modules (and what they depend on) under
 * /lib/modules/<release> with their own depmod indexes, so the guest's
 * modprobe (and so the kernel's autoload) finds them without loading them at boot.
 */
export async function modprobeTree(
  kernel: KernelImage,
  names: string[],
  stageDir: string,
): Promise<Record<string, string>> {
  rmSync(stageDir, { recursive: true, force: true });
  const relRoot = join('lib', 'modules', kernel.release);
  const dest = join(stageDir, relRoot);
  mkdirSync(dest, { recursive: true });
  for (const f of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) {
    if (existsSync(join(kernel.modulesDir, f))) writeFileSync(join(dest, f), readFileSync(join(kernel.modulesDir, f)));
  }
  if (names.length > 0) {
    for (const rel of moduleClosure(kernel.modulesDir, names)) {
      mkdirSync(join(dest, rel, '..'), { recursive: true });
      writeFileSync(join(dest, rel), readFileSync(join(kernel.modulesDir, rel)));
    }
  }
  await execOk('depmod', ['-b', stageDir, kernel.release]);
  const files: Record<string, string> = {};
  for (const f of walk(stageDir)) files[`/${relative(stageDir, f)}`] = f;
  return files;
}

const TRIGGER_INIT = `#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
echo /sbin/modprobe > /proc/sys/kernel/modprobe
ip link set lo up
export PS1=''
stty -echo
echo LIVEGRAFT_GUEST_READY
exec sh 2>&1
`;

export interface TriggerInitramfsOptions {
  kernel: KernelImage;
  fixDirs: string[];
  workDir: string;
  /** More modules to offer to modprobe besides the triggers' own. */
  extraModules?: string[];
  /** Guest path -> host file, copied in as they are. */
  files?: Record<string, string>;
  /** Guest path -> host executable (its shared libraries come along). */
  executables?: Record<string, string>;
  /** The guest's /init; the default mounts, brings lo up and hands over the serial shell. */
  init?: string;
}

/**
 * Builds an initramfs holding every trigger binary, kmod's modprobe with the
 * modules the triggers need, and the busybox tools; returns it with the QEMU
 * arguments the triggers ask for.
 */
export async function buildTriggerInitramfs(
  o: TriggerInitramfsOptions,
): Promise<{ initrd: string; qemuArgs: string[] }> {
  const triggers = await readTriggers(o.fixDirs);
  const bins = await compileTriggers(triggers, join(o.workDir, 'bin'));
  const modules = [...new Set([...triggers.flatMap((t) => t.modules), ...(o.extraModules ?? [])])];
  const tree = await modprobeTree(o.kernel, modules, join(o.workDir, 'modtree'));
  const passwd = join(o.workDir, 'passwd');
  writeFileSync(passwd, `root:x:0:0:root:/root:/bin/sh\nuser:x:${TRIGGER_UID}:${TRIGGER_UID}:user:/tmp:/bin/sh\n`);
  const group = join(o.workDir, 'group');
  writeFileSync(group, `root:x:0:\nuser:x:${TRIGGER_UID}:\n`);
  const { path } = await buildInitramfs({
    modulesDir: o.kernel.modulesDir,
    modules: [],
    init: o.init ?? TRIGGER_INIT,
    // Static binaries have no libraries to follow: they go in as files (copied with their mode).
    files: { ...tree, ...bins, '/etc/passwd': passwd, '/etc/group': group, ...(o.files ?? {}) },
    executables: { '/sbin/modprobe': '/usr/bin/kmod', ...(o.executables ?? {}) },
    out: join(o.workDir, 'initrd.cpio'),
  });
  return { initrd: path, qemuArgs: await qemuArgsFor(triggers, o.workDir) };
}

/** Takes the verdict line out of a trigger's output. */
export function parseVerdict(out: string, code: number): TriggerVerdict {
  const lines = out.split('\n').map((l) => l.trim());
  const verdict = lines.reverse().find((l) => VERDICT.test(l));
  if (verdict && code === 0) return verdict;
  return `ERROR: exit ${code}: ${out.trim().split('\n').slice(-3).join(' | ').slice(0, 300)}`;
}

/**
 * Runs the trigger of every fix directory (the guest must hold the binaries
 * buildTriggerInitramfs put in) and returns each fix id's verdict.
 */
export async function runTriggers(guest: Guest, fixDirs: string[]): Promise<Map<string, TriggerVerdict>> {
  const results = new Map<string, TriggerVerdict>();
  for (const t of await readTriggers(fixDirs)) {
    const r = await guest.run(triggerCommand(t, TRIGGER_TIMEOUT_SEC), TRIGGER_TIMEOUT_MS);
    results.set(t.fixId, parseVerdict(r.out, r.code));
  }
  return results;
}

/** The catalogue's fix directories (each holds a fix.json), sorted. */
export function catalogueDirs(catalogue: string, only: string[] = []): string[] {
  return readdirSync(catalogue)
    .filter((d) => existsSync(join(catalogue, d, 'fix.json')))
    .filter((d) => only.length === 0 || only.includes(d))
    .sort()
    .map((d) => join(catalogue, d));
}
