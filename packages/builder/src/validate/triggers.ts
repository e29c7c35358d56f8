import { existsSync } from 'node:fs';
import { mkdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError, type FixSpec, type TriggerVerdict } from '@livegraft/protocol';
import type { ProcessRunner } from '../runner.ts';

/**
 * A fix's trigger: a C program that shows the flaw, printing VULNERABLE or
 * FIXED (or "UNSUPPORTED: why") as its last line and exiting 0 either way.
 * Beside fix.json, an optional `trigger.modules` names the kernel modules it
 * needs modprobe to find (one a line), and an optional `qemu.json`
 * ({"generator": "x.c", "args": [... "{out}" ...]}) names a C program whose
 * output file a QEMU device needs (e.g. an option ROM).
 */
export interface TriggerSpec {
  fixId: string;
  fixDir: string;
  source: string;
  runAs: 'root' | 'user';
  modules: string[];
  qemu?: { generator: string; args: string[] };
}

/** Where trigger binaries live in the guest. */
export const GUEST_TRIGGER_DIR = '/triggers';
/** The unprivileged uid a `runAs: "user"` trigger runs as. */
export const TRIGGER_UID = 1000;
const VERDICT = /^(VULNERABLE|FIXED|UNSUPPORTED: .*)$/;
const COMPILE_TIMEOUT_MS = 120_000;
const MAX_OUTPUT = 1024 * 1024;

const MODULE_NAME = /^[a-z0-9_-]{1,55}$/;

function lines(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** Reads the trigger of a fix directory, or undefined when fix.json names none. */
export async function readTrigger(fixDir: string, spec: FixSpec): Promise<TriggerSpec | undefined> {
  if (spec.trigger === undefined) return undefined;
  const modFile = path.join(fixDir, 'trigger.modules');
  const modules = existsSync(modFile) ? lines(await readFile(modFile, 'utf8')) : [];
  for (const m of modules)
    if (!MODULE_NAME.test(m))
      throw new LivegraftError('FIX_INVALID', `${modFile}: "${m.slice(0, 60)}" is not a kernel module name`);
  const qemuFile = path.join(fixDir, 'qemu.json');
  let qemu: TriggerSpec['qemu'];
  if (existsSync(qemuFile)) {
    const parsed = JSON.parse(await readFile(qemuFile, 'utf8')) as unknown;
    const q = parsed as { generator?: unknown; args?: unknown };
    if (
      typeof q.generator !== 'string' ||
      !/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\.c$/.test(q.generator) ||
      !Array.isArray(q.args) ||
      q.args.length > 20 ||
      !q.args.every((a) => typeof a === 'string' && a.length < 400 && !a.startsWith('-chardev'))
    )
      throw new LivegraftError('FIX_INVALID', `${qemuFile}: needs {"generator": "<file>.c", "args": [strings]}`);
    qemu = { generator: q.generator, args: q.args as string[] };
  }
  return {
    fixId: spec.id,
    fixDir,
    source: spec.trigger.source,
    runAs: spec.trigger.runAs ?? 'root',
    modules,
    ...(qemu !== undefined ? { qemu } : {}),
  };
}

async function gcc(run: ProcessRunner, args: string[], what: string, signal?: AbortSignal): Promise<void> {
  const r = await run('gcc', args, { timeoutMs: COMPILE_TIMEOUT_MS, maxOutputBytes: MAX_OUTPUT, signal });
  if (r.code !== 0)
    throw new LivegraftError('TRIGGER_BUILD_FAILED', `${what} does not compile:\n${r.stderr.slice(-2000)}`);
}

/** Compiles a trigger with `gcc -static -O2` into `outDir`; returns the binary's path. */
export async function compileTrigger(
  run: ProcessRunner,
  t: TriggerSpec,
  outDir: string,
  signal?: AbortSignal,
): Promise<string> {
  await mkdir(outDir, { recursive: true });
  const bin = path.join(outDir, t.fixId);
  await gcc(run, ['-static', '-O2', '-o', bin, path.join(t.fixDir, t.source)], `trigger ${t.source}`, signal);
  return bin;
}

/** Runs a trigger's QEMU generator and returns the QEMU arguments with `{out}` filled in. */
export async function qemuArgsOf(
  run: ProcessRunner,
  t: TriggerSpec,
  outDir: string,
  signal?: AbortSignal,
): Promise<string[]> {
  if (t.qemu === undefined) return [];
  await mkdir(outDir, { recursive: true });
  const gen = path.join(outDir, `${t.fixId}-gen`);
  const out = path.resolve(outDir, `${t.fixId}.bin`);
  if (out.includes(',')) throw new LivegraftError('FIX_INVALID', `QEMU cannot take a file path with a comma: ${out}`);
  await gcc(run, ['-O2', '-o', gen, path.join(t.fixDir, t.qemu.generator)], `generator ${t.qemu.generator}`, signal);
  const r = await run(gen, [out], { timeoutMs: COMPILE_TIMEOUT_MS, maxOutputBytes: MAX_OUTPUT, signal });
  if (r.code !== 0)
    throw new LivegraftError('TRIGGER_BUILD_FAILED', `generator ${t.qemu.generator} failed: ${r.stderr.slice(-500)}`);
  return t.qemu.args.map((a) => a.replaceAll('{out}', out));
}

/** The shell command line that runs one trigger in the guest, bounded by `timeoutSec`. */
export function triggerCommand(t: Pick<TriggerSpec, 'fixId' | 'runAs'>, timeoutSec: number): string {
  const bin = `${GUEST_TRIGGER_DIR}/${t.fixId}`;
  // busybox su from root asks no password; /etc/passwd names uid TRIGGER_UID "user".
  return `cd /tmp && timeout ${timeoutSec} ${t.runAs === 'user' ? `su -s /bin/sh -c ${bin} user` : bin} 2>&1`;
}

/** The verdict line of a trigger's output: VULNERABLE, FIXED, else ERROR (UNSUPPORTED, a crash, no verdict). */
export function verdictOf(out: string, code: number): TriggerVerdict {
  if (code !== 0) return 'ERROR';
  const last = out
    .split('\n')
    .map((l) => l.trim())
    .reverse()
    .find((l) => VERDICT.test(l));
  return last === 'VULNERABLE' || last === 'FIXED' ? last : 'ERROR';
}
