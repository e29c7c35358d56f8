import type { Guest } from './guest.ts';

/** What the guest's kernel says, read with plain shell tools (never through the agent). */
export interface KernelView {
  /** name -> {enabled, transition} for each /sys/kernel/livepatch entry. */
  patches: Map<string, { enabled: string; transition: string }>;
  /** Livegraft patch modules (livegraft_<kernel id>_l<level>) in /proc/modules. */
  modules: string[];
  cmdline: string;
  /** The last field of /proc/loadavg (the last PID, hidden by the level-2 fix). */
  lastPid: string;
  bootId: string;
}

/**
 * Runs `step` once more if the guest's console shell was restarted while it
 * ran (init restarts it; the answer is then lost). Only for steps whose second
 * run changes nothing.
 */
async function againAfterShellRestart<T>(step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (!/console shell exited and init started a new one/.test(String(err))) throw err;
    return step();
  }
}

/** Runs a command that only reads, or whose second run changes nothing (a write of the same value). */
export function idempotent(g: Guest, cmd: string, timeoutMs?: number): Promise<string> {
  return againAfterShellRestart(() => g.sh(cmd, timeoutMs));
}

const read = idempotent;

export async function viewKernel(g: Guest): Promise<KernelView> {
  const out = await read(
    g,
    [
      'for d in /sys/kernel/livepatch/*; do [ -d "$d" ] && echo "LP $(basename "$d") $(cat "$d/enabled") $(cat "$d/transition")"; done',
      'grep -oE "^livegraft_[0-9a-f]{12}_l[0-9]+" /proc/modules | sed "s/^/MOD /"',
      'echo "CMD $(cat /proc/cmdline)"',
      'echo "PID $(cut -d" " -f5 /proc/loadavg)"',
      'echo "BOOT $(cat /proc/sys/kernel/random/boot_id)"',
      'true',
    ].join('; '),
  );
  const v: KernelView = { patches: new Map(), modules: [], cmdline: '', lastPid: '', bootId: '' };
  for (const line of out.split('\n')) {
    const [tag, ...rest] = line.trim().split(' ');
    if (tag === 'LP' && rest[0]) v.patches.set(rest[0], { enabled: rest[1] ?? '', transition: rest[2] ?? '' });
    else if (tag === 'MOD' && rest[0]) v.modules.push(rest[0]);
    else if (tag === 'CMD') v.cmdline = rest.join(' ');
    else if (tag === 'PID') v.lastPid = rest[0] ?? '';
    else if (tag === 'BOOT') v.bootId = rest[0] ?? '';
  }
  return v;
}

/**
 * A workload that keeps reading both patched /proc files and counts every
 * failed read, so a patch step that disturbs user space shows up.
 */
export async function startWorkload(g: Guest): Promise<void> {
  await g.sh(
    `(ok=0; fail=0; while [ ! -e /tmp/work.stop ]; do if cat /proc/cmdline /proc/loadavg > /dev/null 2>&1; then ok=$((ok+1)); else fail=$((fail+1)); fi; echo "$ok $fail" > /tmp/work.count.new; mv /tmp/work.count.new /tmp/work.count; done) > /dev/null 2>&1 &`,
  );
}

/**
 * The workload's counts. The console may carry kernel messages besides the
 * answer (a loaded TCG guest prints RCU stall warnings), so the counts are the
 * line that is exactly two numbers.
 */
export async function workloadCounts(g: Guest): Promise<{ ok: number; fail: number }> {
  const out = await read(g, 'cat /tmp/work.count');
  const m = /^(\d+) (\d+)$/m.exec(out);
  if (m === null) throw new Error(`the workload's counts are not in the answer: ${JSON.stringify(out.slice(0, 2000))}`);
  return { ok: Number(m[1]), fail: Number(m[2]) };
}

/**
 * The bound on one agent command: above the agent's own worst case (TUF
 * downloads may take 10 minutes at the minimum rate, then module loading and
 * the transition have their own bounds), so that a slow guest on a loaded
 * machine is not mistaken for a hang; a real hang still ends the test.
 */
export const AGENT_COMMAND_BOUND_MS = 900_000;

/**
 * Waits in the guest until the shell condition `cond` holds, polling five times a
 * second, for at most `boundSec` seconds of the guest's clock (a starved guest's
 * polls run late, so a count of polls is no bound), or until `giveUp` holds.
 * Throws, naming `what`, when `cond` still fails; the guest's shell is free again
 * either way, so the next command is not lost behind a loop that still runs.
 */
export async function waitInGuest(
  g: Guest,
  cond: string,
  what: string,
  { boundSec, giveUp }: { boundSec: number; giveUp?: string },
): Promise<void> {
  const stop = giveUp ? ` || { ${giveUp}; }` : '';
  const cmd = `end=$(($(date +%s)+${boundSec})); until { ${cond}; }${stop} || [ $(date +%s) -ge $end ]; do sleep 0.2; done; ${cond}`;
  // Waiting again after a shell restart changes nothing.
  const r = await againAfterShellRestart(() => g.run(cmd, (boundSec + 60) * 1000));
  if (r.code !== 0) throw new Error(`${what}: not so within ${boundSec} s${giveUp ? ' (or gave up)' : ''}\n${r.out}`);
}

/** Runs the agent in the guest; returns its exit code, stdout, stderr and stdout parsed as JSON if it is. */
export async function agent(
  g: Guest,
  args: string,
  timeoutMs = AGENT_COMMAND_BOUND_MS,
): Promise<{ code: number; stdout: string; stderr: string; json: unknown }> {
  const r = await g.run(`livegraft-agent ${args} > /tmp/agent.out 2> /tmp/agent.err`, timeoutMs);
  const stdout = (await g.run('cat /tmp/agent.out')).out;
  const stderr = (await g.run('cat /tmp/agent.err')).out;
  let json: unknown;
  try {
    json = JSON.parse(stdout);
  } catch {
    /* not JSON: leave undefined */
  }
  return { code: r.code, stdout, stderr, json };
}

/**
 * Brings a guest that an earlier test left busy back to rest. An agent that
 * test started in the background (and may have stopped or left waiting) is
 * ended; the next agent command reconciles its journal, as on a real host.
 * A livepatch transition still in progress is let finish, releasing the test
 * module's blocking thread if it holds one. Suites whose tests build on one
 * another call it before each test, so one failure is reported by the test
 * that failed and not again by every test after it. A guest already at rest
 * is left exactly as it is.
 */
export async function settle(g: Guest): Promise<void> {
  await idempotent(g, 'for p in $(pidof node); do kill -9 "$p"; done; true');
  const busy = '[ -n "$(grep -lx 1 /sys/kernel/livepatch/*/transition 2>/dev/null)" ]';
  const release = '/sys/module/livegraft_test_blocker/parameters/release';
  await idempotent(g, `if ${busy} && [ -w ${release} ]; then echo 1 > ${release}; fi; true`);
  await waitInGuest(g, `! ${busy}`, 'every livepatch transition left by the earlier test finished', {
    boundSec: 300,
  });
}
