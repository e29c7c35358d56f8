import { LivegraftError } from '@livegraft/protocol';
import type { ProcessResult, ProcessRunner } from '../runner.ts';

/** Output kept from helper programs (apt, dpkg-deb, tar, make): enough for a diagnosis. */
export const MAX_TOOL_OUTPUT_BYTES = 4 * 1024 * 1024;

export interface StepContext {
  run: ProcessRunner;
  log: (line: string) => void;
  signal?: AbortSignal | undefined;
}

/** The last lines of a program's output, for error messages. */
export function tail(text: string, lines = 20): string {
  return text.trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Runs a program and throws `code` when it does not exit 0 (or overstays `timeoutMs`).
 * `what` names the step in the message.
 */
export async function runChecked(
  ctx: StepContext,
  code: string,
  what: string,
  command: string,
  args: readonly string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs: number; okCodes?: readonly number[] },
): Promise<ProcessResult> {
  const res = await ctx.run(command, args, {
    cwd: opts.cwd,
    env: opts.env ?? process.env,
    timeoutMs: opts.timeoutMs,
    maxOutputBytes: MAX_TOOL_OUTPUT_BYTES,
    signal: ctx.signal,
  });
  const ok = res.code !== null && (opts.okCodes ?? [0]).includes(res.code);
  if (!ok) {
    const why = res.timedOut
      ? `timed out after ${Math.round(opts.timeoutMs / 1000)} s`
      : ctx.signal?.aborted === true
        ? 'was cancelled'
        : res.signal !== null
          ? `was killed by ${res.signal}`
          : `exited with ${res.code}`;
    throw new LivegraftError(
      code,
      `${what}: \`${command} ${args.join(' ')}\` ${why}\n${tail(res.stderr || res.stdout)}`,
      {
        details: { command, args, code: res.code, stderr: tail(res.stderr, 60), stdout: tail(res.stdout, 60) },
      },
    );
  }
  return res;
}
