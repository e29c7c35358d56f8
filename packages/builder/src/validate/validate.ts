import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  LivegraftError,
  isLivegraftError,
  type FixSpec,
  type PatchManifest,
  type TriggerRun,
  type TriggerVerdict,
  type ValidationRecord,
} from '@livegraft/protocol';
import type { ProcessRunner } from '../runner.ts';
import { ValidationGuest } from './guest.ts';
import { buildGuestImage } from './image.ts';
import { GUEST_TRIGGER_DIR, compileTrigger, qemuArgsOf, readTrigger, triggerCommand, verdictOf } from './triggers.ts';
import type { TriggerSpec } from './triggers.ts';

/** A level as built: its manifest, and the files the agent reads. */
export interface LevelFiles {
  manifest: PatchManifest;
  manifestPath: string;
  modulePath: string;
}

export interface ValidateInput {
  release: string;
  /** The exact build's kernel image and its /lib/modules/<release>. */
  vmlinuz: string;
  modulesDir: string;
  level: LevelFiles;
  /** The level it replaces on hosts (rolled back to and from); undefined for a build's first level. */
  previous?: LevelFiles;
  /** The level's fix directories, in order, with their fix.json. */
  fixes: readonly { dir: string; spec: FixSpec }[];
  /** The fix this level adds: its trigger must show the flaw before, the fix after, and the flaw again after rollback. */
  newFixId: string;
  /** The runtime and agent bundle that run in the guest, as on hosts. */
  node: string;
  agentBundle: string;
  workDir: string;
  run: ProcessRunner;
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** The whole validation, boot to power-off; QEMU is killed after it (default 20 min). */
  timeoutMs?: number;
  memoryMb?: number;
}

export interface ValidateOutput {
  record: ValidationRecord;
  /** The guest's serial console, for the job's record. */
  consoleLog: string;
}

export const VALIDATION_TIMEOUT_MS = 20 * 60_000;
const BOOT_TIMEOUT_MS = 5 * 60_000;
const AGENT_TIMEOUT_MS = 5 * 60_000;
const TRIGGER_TIMEOUT_SEC = 90;
const SHELL_TIMEOUT_MS = 60_000;
const MAX_TRIGGER_OUTPUT = 4000;
const WORKLOAD_SOURCE = fileURLToPath(new URL('./workload.c', import.meta.url));
const WORKLOAD_STATUS = '/tmp/workload.status';

/**
 * Kernel log lines that fail a validation: warnings and bugs, oopses,
 * lockdep's reports, RCU stalls, soft lockups and hung tasks.
 */
export const KERNEL_LOG_PROBLEM =
  /(WARNING:|BUG:|Oops|general protection fault|Kernel panic|possible circular locking|possible recursive locking|inconsistent lock state|suspicious RCU usage|rcu.*detected stall|soft lockup|hard LOCKUP|blocked for more than \d+ seconds|UBSAN:|KASAN:|list_(add|del) corruption)/;

/**
 * The kernel log lines of `dmesg` output that fail a validation. A soft
 * lockup said to last longer than the whole validation (`maxSec`) cannot
 * have happened: under TCG a starved host can make the guest's clock jump,
 * and the watchdog then reports the jump, not a stuck CPU.
 */
export function kernelLogProblems(dmesg: string, maxSec = Infinity): string[] {
  return dmesg
    .split('\n')
    .filter((l) => KERNEL_LOG_PROBLEM.test(l))
    .filter((l) => {
      const stuck = /soft lockup - CPU#\d+ stuck for (\d+)s/.exec(l);
      return stuck?.[1] === undefined || Number(stuck[1]) <= maxSec;
    })
    .map((l) => l.slice(0, 1000))
    .slice(0, 200);
}

const guestLevelPath = (m: PatchManifest): string => `/levels/${m.name}.json`;

async function prepareGuest(
  input: ValidateInput,
  triggers: TriggerSpec[],
): Promise<{ initrd: string; qemu: string[] }> {
  const bins = path.join(input.workDir, 'bin');
  await mkdir(bins, { recursive: true });
  const files: Record<string, string> = {};
  const qemu: string[] = [];
  for (const t of triggers) {
    files[`${GUEST_TRIGGER_DIR}/${t.fixId}`] = await compileTrigger(input.run, t, bins, input.signal);
    qemu.push(...(await qemuArgsOf(input.run, t, path.join(input.workDir, 'qemu'), input.signal)));
  }
  const workload = path.join(bins, 'workload');
  const r = await input.run('gcc', ['-static', '-O2', '-o', workload, WORKLOAD_SOURCE], {
    timeoutMs: 120_000,
    maxOutputBytes: 1024 * 1024,
    signal: input.signal,
  });
  if (r.code !== 0) throw new LivegraftError('VALIDATION_IMAGE_FAILED', `workload.c: ${r.stderr.slice(-1000)}`);
  files['/usr/bin/workload'] = workload;
  for (const l of [input.previous, input.level]) {
    if (l === undefined) continue;
    files[guestLevelPath(l.manifest)] = l.manifestPath;
    files[`/levels/${l.manifest.module.file}`] = l.modulePath;
  }
  // The objects the level patches are loaded before it, so their functions are patched and exercised.
  const targets = input.level.manifest.fixes.flatMap((f) => f.functions.map((fn) => fn.object));
  const modules = [...new Set([...targets.filter((o) => o !== 'vmlinux'), ...triggers.flatMap((t) => t.modules)])];
  const initrd = await buildGuestImage({
    release: input.release,
    modulesDir: input.modulesDir,
    modules,
    node: input.node,
    agentBundle: input.agentBundle,
    files,
    workDir: input.workDir,
    run: input.run,
  });
  return { initrd, qemu };
}

/**
 * Proves a level on its exact kernel build: boots the Debian kernel image in
 * QEMU, applies the previous level, starts a workload, runs every trigger,
 * applies the level with the real agent, runs the triggers again, checks the
 * kernel log, rolls back to the previous level (the new fix's flaw must come
 * back) and applies the level again. Never throws for what the guest does:
 * every problem, a hang or a lost guest included, is a failed record.
 */
export async function validateLevel(input: ValidateInput): Promise<ValidateOutput> {
  const log = input.log ?? (() => undefined);
  const started = Date.now();
  const timeoutMs = input.timeoutMs ?? VALIDATION_TIMEOUT_MS;
  const prevLevel = input.previous?.manifest.level ?? 0;
  const problems: string[] = [];
  const triggers: TriggerRun[] = [];
  const timings = { bootMs: 0, applyMs: 0, rollbackMs: 0, reapplyMs: 0, totalMs: 0 };
  const workload = { operations: 0, failed: 0 };
  let kernelLog: string[] = [];
  let kernelVersion = '';
  let agentVersion = 'unknown';
  let guest: ValidationGuest | undefined;

  await rm(input.workDir, { recursive: true, force: true });
  await mkdir(input.workDir, { recursive: true });
  try {
    const specs: TriggerSpec[] = [];
    for (const f of input.fixes) {
      const t = await readTrigger(f.dir, f.spec);
      if (t !== undefined) specs.push(t);
    }
    log(`validation: preparing a guest for ${input.release} with ${specs.length} trigger(s)`);
    const { initrd, qemu } = await prepareGuest(input, specs);
    guest = new ValidationGuest({
      vmlinuz: input.vmlinuz,
      initrd,
      memoryMb: input.memoryMb ?? 1536,
      qemuArgs: qemu,
      deadline: started + timeoutMs,
      ...(input.signal !== undefined ? { signal: input.signal } : {}),
    });
    const g = guest;
    const sh = async (cmd: string, what: string, ms = SHELL_TIMEOUT_MS): Promise<string> => {
      const r = await g.run(cmd, ms);
      if (r.code !== 0)
        throw new LivegraftError('VALIDATION_STEP_FAILED', `${what} exited ${r.code}: ${r.out.trim().slice(-1500)}`);
      return r.out.trim();
    };
    const agent = async (args: string, what: string): Promise<number> => {
      const t = Date.now();
      await sh(`livegraft-agent ${args} --json`, what, AGENT_TIMEOUT_MS);
      return Date.now() - t;
    };
    const runTriggers = async (): Promise<Map<string, { verdict: TriggerVerdict; out: string }>> => {
      const out = new Map<string, { verdict: TriggerVerdict; out: string }>();
      for (const t of specs) {
        const r = await g.run(triggerCommand(t, TRIGGER_TIMEOUT_SEC), (TRIGGER_TIMEOUT_SEC + 30) * 1000);
        out.set(t.fixId, { verdict: verdictOf(r.out, r.code), out: r.out.trim().slice(-MAX_TRIGGER_OUTPUT) });
      }
      return out;
    };
    const assertLevel = async (level: number, what: string): Promise<void> => {
      const live = await sh('ls /sys/kernel/livepatch 2>/dev/null; true', 'reading /sys/kernel/livepatch');
      const names = live.split(/\s+/).filter((n) => n !== '');
      const want =
        level === 0
          ? []
          : [level === input.level.manifest.level ? input.level.manifest.name : input.previous?.manifest.name];
      if (names.join(' ') !== want.join(' '))
        problems.push(`${what}: /sys/kernel/livepatch holds [${names.join(', ')}], expected [${want.join(', ')}]`);
      for (const n of names) {
        const transition = await sh(`cat /sys/kernel/livepatch/${n}/transition`, 'reading the transition state');
        if (transition !== '0') problems.push(`${what}: ${n} is still in transition`);
      }
    };

    log('validation: booting the guest');
    await g.boot(BOOT_TIMEOUT_MS);
    timings.bootMs = g.bootMs;
    const uname = await sh('uname -r; uname -v', 'uname');
    const [release = '', version = ''] = uname.split('\n').map((l) => l.trim());
    kernelVersion = version;
    if (release !== input.release)
      throw new LivegraftError('VALIDATION_WRONG_KERNEL', `the guest runs ${release}, not ${input.release}`);
    agentVersion =
      (await g.run('livegraft-agent --version', AGENT_TIMEOUT_MS)).out.trim().split('\n').at(-1) ?? 'unknown';
    const targets = new Set(input.level.manifest.fixes.flatMap((f) => f.functions.map((fn) => fn.object)));
    targets.delete('vmlinux');
    for (const m of [...targets, ...new Set(specs.flatMap((t) => t.modules))])
      await sh(`modprobe ${m}`, `modprobe ${m}`);
    // Boot-time messages are not the level's doing; only what follows counts.
    await sh('dmesg -c > /tmp/boot.dmesg', 'clearing the kernel log');

    if (input.previous !== undefined) {
      log(`validation: applying the previous level ${prevLevel}`);
      await agent(`apply ${guestLevelPath(input.previous.manifest)}`, `applying level ${prevLevel}`);
      await assertLevel(prevLevel, `after applying level ${prevLevel}`);
    }
    await sh(`setsid workload ${WORKLOAD_STATUS} > /tmp/workload.log 2>&1 &`, 'starting the workload');
    const before = await runTriggers();

    log(`validation: applying level ${input.level.manifest.level}`);
    timings.applyMs = await agent(
      `apply ${guestLevelPath(input.level.manifest)}`,
      `applying level ${input.level.manifest.level}`,
    );
    await assertLevel(input.level.manifest.level, `after applying level ${input.level.manifest.level}`);
    const after = await runTriggers();

    log(`validation: rolling back to level ${prevLevel}`);
    timings.rollbackMs = await agent(
      prevLevel === 0 ? 'unload' : `rollback --to ${prevLevel}`,
      `rolling back to ${prevLevel}`,
    );
    await assertLevel(prevLevel, `after rolling back to level ${prevLevel}`);
    const newTrigger = specs.find((t) => t.fixId === input.newFixId);
    let afterRollback: TriggerVerdict | undefined;
    if (newTrigger !== undefined) {
      const r = await g.run(triggerCommand(newTrigger, TRIGGER_TIMEOUT_SEC), (TRIGGER_TIMEOUT_SEC + 30) * 1000);
      afterRollback = verdictOf(r.out, r.code);
    }

    log(`validation: applying level ${input.level.manifest.level} again`);
    timings.reapplyMs = await agent(`apply ${guestLevelPath(input.level.manifest)}`, 'applying the level again');
    await assertLevel(input.level.manifest.level, 'after applying the level again');

    await sh('kill -TERM $(pidof workload) 2>/dev/null; sleep 1; true', 'stopping the workload');
    const counts = /operations (\d+) failed (\d+)/.exec(
      await sh(`cat ${WORKLOAD_STATUS} 2>/dev/null; true`, 'reading the workload'),
    );
    if (counts === null) problems.push('the workload left no counts (did it crash?)');
    else {
      workload.operations = Number(counts[1]);
      workload.failed = Number(counts[2]);
      if (workload.failed > 0)
        problems.push(`the workload saw ${workload.failed} failed operations of ${workload.operations}`);
      if (workload.operations === 0) problems.push('the workload made no progress');
    }
    kernelLog = kernelLogProblems(await sh('dmesg', 'reading the kernel log'), (Date.now() - started) / 1000);
    if (kernelLog.length > 0) problems.push(`the kernel log reports: ${kernelLog[0]}`);

    for (const t of specs) {
      const b = before.get(t.fixId);
      const a = after.get(t.fixId);
      if (b === undefined || a === undefined) continue;
      const run: TriggerRun = {
        fixId: t.fixId,
        before: b.verdict,
        after: a.verdict,
        output: `before:\n${b.out}\nafter:\n${a.out}`.slice(-MAX_TRIGGER_OUTPUT),
      };
      if (t.fixId === input.newFixId && afterRollback !== undefined) run.afterRollback = afterRollback;
      triggers.push(run);
      if (a.verdict === 'VULNERABLE')
        problems.push(`${t.fixId}: the trigger still shows the flaw with level ${input.level.manifest.level} applied`);
      else if (a.verdict === 'ERROR' && b.verdict !== 'ERROR')
        problems.push(`${t.fixId}: the trigger failed after the apply: ${a.out.slice(-300)}`);
      if (t.fixId === input.newFixId && b.verdict === 'VULNERABLE' && afterRollback === 'FIXED')
        problems.push(`${t.fixId}: after rolling back to level ${prevLevel} the flaw did not come back`);
    }
  } catch (err) {
    if (isLivegraftError(err) && err.code === 'CANCELLED') throw err;
    problems.unshift(isLivegraftError(err) ? `${err.code}: ${err.message}` : `validation error: ${String(err)}`);
  } finally {
    await guest?.stop(20_000);
  }
  timings.totalMs = Date.now() - started;
  const record: ValidationRecord = {
    result: problems.length === 0 ? 'passed' : 'failed',
    reason: problems[0] ?? null,
    problems: problems.slice(0, 100).map((p) => p.slice(0, 2000)),
    kernelRelease: input.release,
    kernelVersion: kernelVersion.slice(0, 256),
    level: input.level.manifest.level,
    previousLevel: prevLevel,
    startedAt: new Date(started).toISOString(),
    timings,
    triggers,
    workload,
    kernelLog,
    agentVersion: agentVersion.slice(0, 64),
  };
  log(
    `validation: ${record.result}${record.reason !== null ? `: ${record.reason}` : ''} (${Math.round(timings.totalMs / 1000)} s)`,
  );
  return { record, consoleLog: guest?.console ?? '' };
}
