/**
 * The commander programs of `livegraft-agent` and `livegraft`, as their own
 * entry points define them: each entry point is run with parsing replaced by a
 * capture of the program it was about to parse, so nothing executes.
 */
import { Command } from 'commander';

async function capture(start: () => Promise<unknown>): Promise<Command> {
  const proto = Command.prototype as unknown as { parseAsync: (...a: unknown[]) => Promise<unknown> };
  const original = proto.parseAsync;
  const parsed: Command[] = [];
  proto.parseAsync = function (this: Command) {
    parsed.push(this);
    return Promise.resolve(this);
  };
  try {
    await start();
  } finally {
    proto.parseAsync = original;
  }
  const program = parsed[0];
  if (program === undefined) throw new Error('the entry point defined no commander program');
  return program;
}

export async function agentProgram(): Promise<Command> {
  const { runCli } = await import('../packages/agent/src/program.ts');
  const io = { stdout: () => undefined, stderr: () => undefined, env: {} };
  return capture(() => runCli([], io));
}

export async function adminProgram(): Promise<Command> {
  return capture(() => import('../packages/cli/src/bin.ts'));
}
