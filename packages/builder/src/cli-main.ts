import { CommanderError, type Command } from 'commander';
import { isLivegraftError, StatusExit } from '@livegraft/protocol';

/**
 * Parses argv with `program`, which is set to throw instead of exiting.
 * Returns the exit code when the run ends here (help, version, a usage
 * error already printed by commander), or undefined to go on.
 */
export function parseArgs(program: Command, argv: string[]): number | undefined {
  program.exitOverride().configureOutput({ writeErr: (s) => process.stderr.write(s) });
  try {
    program.parse(argv);
    return undefined;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : StatusExit.USAGE;
    throw err;
  }
}

/** A signal aborted by Ctrl-C or SIGTERM, so the work stops its children and cleans up itself. */
export function stopSignal(): { signal: AbortSignal; dispose: () => void } {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    signal: stop.signal,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

/** The exit code for an error: StatusExit.USAGE for a usage error, 130 when cancelled, 1 otherwise. */
export function exitCodeFor(err: unknown): number {
  if (!isLivegraftError(err)) return 1;
  return err.code === 'USAGE' ? StatusExit.USAGE : err.code === 'CANCELLED' ? 130 : 1;
}

/**
 * Runs a program's main and exits with its code. A Livegraft error prints
 * `error [CODE]: message`; anything else is a bug and prints its stack.
 */
export function runMain(main: (argv: string[]) => Promise<number>): void {
  main(process.argv).then(
    (code) => process.exit(code),
    (err: unknown) => {
      const text = isLivegraftError(err)
        ? `error [${err.code}]: ${err.message}`
        : `error [INTERNAL]: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`;
      process.stderr.write(`${text}\n`);
      process.exit(exitCodeFor(err));
    },
  );
}
