import { InvalidArgumentError, type Command } from 'commander';
import { StatusExit, type UserspaceLibraryStatus } from '@livegraft/protocol';
import { UserspaceManager, type LibraryStatus, type ProcessOutcome } from './manager.ts';
import { DeathWatch } from './death-watch.ts';
import { helperPath } from './native.ts';

/** What the user-space commands take from the CLI around them. */
export interface UserspaceCliContext {
  stateDir: (cmd: Command) => string;
  env: Record<string, string | undefined>;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  setExit: (code: number) => void;
  setJson: (json: boolean) => void;
}

export function userspaceManager(
  stateDir: string,
  ctx: Pick<UserspaceCliContext, 'env' | 'stderr'>,
  pids?: readonly number[],
) {
  return new UserspaceManager({
    stateDir,
    ...(pids === undefined ? {} : { pids }),
    helper: helperPath(ctx.env),
    log: (m) => ctx.stderr(`${m}\n`),
  });
}

/** The user-space part of `status`: nothing (and no scan) when no level was ever installed. */
export function userspaceStatusOf(stateDir: string): LibraryStatus[] {
  return new UserspaceManager({ stateDir, helper: '' }).status();
}

/**
 * What a check-in reports about user-space libraries (nothing, and no scan,
 * when no level was ever installed). A failure is logged, never fails the check-in.
 */
export function userspaceCheckinReport(stateDir: string, warn: (msg: string) => void): UserspaceLibraryStatus[] {
  try {
    return new UserspaceManager({ stateDir, helper: '' }).report();
  } catch (e) {
    warn(`user-space status not reported: ${(e as Error).message}`);
    return [];
  }
}

/**
 * The daemon's re-scan loop; resolves once stopped. A pass with no level
 * installed reads the state file and nothing else; the helper is looked for
 * only when a level is there (the check-in may install one at any time).
 */
export function userspaceWatch(
  stateDir: string,
  ctx: Pick<UserspaceCliContext, 'env' | 'stderr'>,
  stop: AbortSignal,
  onHalt?: () => void,
) {
  const m = new UserspaceManager({ stateDir, helper: '', log: (msg) => ctx.stderr(`${msg}\n`) });
  return watchLoop(m, 10_000, stop, ctx.stderr, () => helperPath(ctx.env), onHalt);
}

export function formatOutcomes(out: ProcessOutcome[]): string {
  if (out.length === 0) return 'no process needed a change\n';
  return out
    .map((o) => {
      const what =
        o.action === 'refused' || o.action === 'failed' ? `${o.action} (${o.reason}): ${o.message}` : o.action;
      return `  ${o.pid} ${o.comm}: level ${o.level} ${what} [stopped ${(o.stopUs / 1000).toFixed(2)} ms]\n`;
    })
    .join('');
}

/** Per library: level, CVEs, and every patched, refused (with its reason) and unpatched process. */
export function formatUserspaceStatus(libs: LibraryStatus[]): string {
  if (libs.length === 0) return '';
  let s = 'user-space libraries:\n';
  for (const l of libs) {
    const halted = l.halted ? `, HALTED (process ${l.halted.pid} ${l.halted.comm} ended soon after patching)` : '';
    s += `  ${l.soname} ${l.buildId}: level ${l.level}${l.cves.length ? ` (${l.cves.join(', ')})` : ''}${halted}\n`;
    s += `    patched ${l.patched.length}, unpatched ${l.unpatched.length}, refused ${l.refused.length}\n`;
    for (const p of l.patched)
      s += `    patched   ${p.pid} ${p.comm}${p.deleted ? ' (library deleted on disk)' : ''}\n`;
    for (const r of l.refused) s += `    refused   ${r.pid} ${r.comm}: ${r.reason}: ${r.message}\n`;
    for (const u of l.unpatched)
      s += `    unpatched ${u.pid} ${u.comm}${u.deleted ? ' (library deleted on disk)' : ''}\n`;
  }
  return s;
}

function collectPid(v: string, prev: number[] = []): number[] {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('--pid must be a process id');
  return [...prev, n];
}

function exitFor(out: ProcessOutcome[]): number {
  return out.some((o) => o.action === 'refused' || o.action === 'failed') ? StatusExit.ERROR : 0;
}

/** `livegraft-agent userspace ...`: apply, rescan, rollback, status, unhalt, watch. */
export function registerUserspaceCommands(program: Command, ctx: UserspaceCliContext): void {
  const us = program.command('userspace').description('live patches for shared libraries in running processes');
  const manager = (cmd: Command) => userspaceManager(ctx.stateDir(cmd), ctx, cmd.opts<{ pid?: number[] }>().pid);
  const pidOption = ['--pid <pid>', 'only this process (repeat for more)', collectPid] as const;
  const print = (json: boolean, value: unknown, human: string) =>
    ctx.stdout(json ? `${JSON.stringify(value, null, 2)}\n` : human);

  us.command('apply')
    .description(
      'install a user-space level (manifest + code object beside it) and apply it to every process of its build',
    )
    .argument('<manifest>', 'the level manifest JSON')
    .option(...pidOption)
    .option('--json', 'machine-readable output')
    .action(async (manifest: string, opts: { json?: boolean }, cmd: Command) => {
      ctx.setJson(opts.json === true);
      const out = await manager(cmd).apply(manifest);
      print(opts.json === true, { ok: true, processes: out }, formatOutcomes(out));
      ctx.setExit(exitFor(out));
    });

  us.command('rescan')
    .description('apply the installed levels to processes started since, and restore where a level was withdrawn')
    .option(...pidOption)
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      ctx.setJson(opts.json === true);
      const out = await manager(cmd).reconcile();
      print(opts.json === true, { ok: true, processes: out }, formatOutcomes(out));
      ctx.setExit(exitFor(out));
    });

  us.command('rollback')
    .description('restore the original code in every patched process of one library build (default: all builds)')
    .option('--build-id <id>', 'only this library build')
    .option(...pidOption)
    .option('--json', 'machine-readable output')
    .action(async (opts: { buildId?: string; json?: boolean }, cmd: Command) => {
      ctx.setJson(opts.json === true);
      const out = await manager(cmd).rollback(opts.buildId);
      print(opts.json === true, { ok: true, processes: out }, formatOutcomes(out));
      ctx.setExit(exitFor(out));
    });

  us.command('unhalt')
    .description('let a build halted by the crash-loop guard be patched again')
    .argument('<build-id>', 'the library build')
    .action((buildId: string, _opts: unknown, cmd: Command) => {
      manager(cmd).unhalt(buildId);
      ctx.stdout(`build ${buildId} may be patched again\n`);
      ctx.setExit(0);
    });

  us.command('status')
    .description('per library build: level, CVEs, patched, unpatched and refused processes with reasons')
    .option(...pidOption)
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      ctx.setJson(opts.json === true);
      const libs = manager(cmd).status();
      print(opts.json === true, { libraries: libs }, formatUserspaceStatus(libs) || 'no user-space levels installed\n');
      ctx.setExit(0);
    });

  us.command('watch')
    .description('re-scan every interval: patch processes started later from an old build; the crash-loop guard')
    .option('--interval <sec>', 'seconds between scans', '10')
    .action(async (opts: { interval: string }, cmd: Command) => {
      const sec = Number(opts.interval);
      if (!Number.isFinite(sec) || sec < 1 || sec > 86400) throw new Error('--interval must be 1..86400 seconds');
      const m = manager(cmd);
      const stop = new AbortController();
      const onStop = () => stop.abort();
      process.once('SIGTERM', onStop);
      process.once('SIGINT', onStop);
      try {
        await watchLoop(m, sec * 1000, stop.signal, (s) => ctx.stderr(s));
      } finally {
        process.off('SIGTERM', onStop);
        process.off('SIGINT', onStop);
      }
      ctx.setExit(0);
    });
}

/** How often the death watch looks at recently patched processes between re-scans. */
export const DEATH_POLL_MS = 1000;

/**
 * Re-scans until stopped; one bad pass is logged, not fatal. Between passes,
 * the death watch looks every `pollMs` at the processes patched within the
 * crash-loop guard's window, so a crash is judged on when it happened.
 */
export async function watchLoop(
  m: UserspaceManager,
  intervalMs: number,
  stop: AbortSignal,
  log: (s: string) => void,
  helper?: () => string,
  /** Called when the crash-loop guard halted a level in this pass (the daemon checks in at once to tell the server). */
  onHalt?: () => void,
  pollMs = DEATH_POLL_MS,
): Promise<void> {
  const watch = new DeathWatch(m);
  const halts = () =>
    Object.entries(m.store.load().libraries)
      .filter(([, l]) => l.halted !== undefined)
      .map(([id, l]) => `${id}/${l.halted?.level}`);
  while (!stop.aborted) {
    try {
      let halted = false;
      const out = await m.exclusive(async () => {
        if (Object.keys(m.store.load().libraries).length === 0) return [];
        const before = new Set(halts());
        const pass = helper === undefined ? m : new UserspaceManager({ ...m.deps, helper: helper() });
        const done = await pass.reconcile();
        halted = halts().some((h) => !before.has(h));
        return done;
      });
      if (out.length > 0) log(formatOutcomes(out));
      if (halted) onHalt?.();
    } catch (e) {
      log(`user-space re-scan failed: ${(e as Error).message}\n`);
    }
    const until = Date.now() + intervalMs;
    while (!stop.aborted && Date.now() < until) {
      await sleep(Math.min(pollMs, until - Date.now()), stop);
      if (stop.aborted) break;
      try {
        if (await watch.tick()) onHalt?.();
      } catch (e) {
        log(`user-space death watch failed: ${(e as Error).message}\n`);
      }
    }
  }
}

function sleep(ms: number, stop: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(t);
      stop.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    stop.addEventListener('abort', done, { once: true });
  });
}
