import { spawn } from 'node:child_process';

/** What a finished child process left behind. Output beyond the cap is dropped, not buffered. */
export interface ProcessResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** True when stdout or stderr went past maxOutputBytes and the rest was discarded. */
  truncated: boolean;
}

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs: number;
  maxOutputBytes: number;
  /** Aborting kills the child's process group, like a timeout. */
  signal?: AbortSignal;
}

/** Runs a program to completion. Injected into buildPatch so tests can watch or replace `make`. */
export type ProcessRunner = (command: string, args: readonly string[], options: RunOptions) => Promise<ProcessResult>;

/** Grace period between SIGTERM and SIGKILL when a run overstays its timeout. */
const KILL_GRACE_MS = 5_000;

/**
 * The real runner. The child gets its own process group so that a timeout
 * kills the whole `make` tree (compilers, modpost), not only `make` itself.
 */
export const spawnRunner: ProcessRunner = (command, args, options) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    const out = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
    const size = { stdout: 0, stderr: 0 };
    let truncated = false;
    let timedOut = false;
    const collect = (stream: 'stdout' | 'stderr') => (chunk: Buffer) => {
      const room = options.maxOutputBytes - size[stream];
      if (room <= 0) {
        truncated = true;
        return;
      }
      const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
      if (part.length < chunk.length) truncated = true;
      out[stream].push(part);
      size[stream] += part.length;
    };
    child.stdout.on('data', collect('stdout'));
    child.stderr.on('data', collect('stderr'));

    const killGroup = (signal: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      if (killTimer !== undefined) return;
      killGroup('SIGTERM');
      killTimer = setTimeout(() => killGroup('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, options.timeoutMs);
    const onAbort = (): void => stop();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    if (options.signal?.aborted === true) stop();

    const settle = (): void => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      options.signal?.removeEventListener('abort', onAbort);
    };
    child.on('error', (err) => {
      settle();
      reject(err);
    });
    child.on('close', (code, signal) => {
      settle();
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out.stdout).toString('utf8'),
        stderr: Buffer.concat(out.stderr).toString('utf8'),
        timedOut,
        truncated,
      });
    });
  });
