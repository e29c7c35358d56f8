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

let agent: Promise<Command> | undefined;
let admin: Promise<Command> | undefined;

export function agentProgram(): Promise<Command> {
  agent ??= import('../packages/agent/src/cli/program.ts').then(({ runCli }) =>
    capture(() => runCli([], { stdout: () => undefined, stderr: () => undefined, env: {} })),
  );
  return agent;
}

/** The admin CLI's entry point defines its program as it is imported, so this runs once per process. */
export function adminProgram(): Promise<Command> {
  admin ??= capture(() => import('../packages/cli/src/bin.ts'));
  return admin;
}
