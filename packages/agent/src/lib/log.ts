export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: LogLevel, msg: string, fields?: Record<string, unknown>): void;
}

/** JSON lines, one object per event: what the daemon writes to stderr for journald. */
export function jsonLogger(write: (line: string) => void, now: () => number = Date.now): Logger {
  return {
    log(level, msg, fields) {
      write(`${JSON.stringify({ time: new Date(now()).toISOString(), level, msg, ...fields })}\n`);
    },
  };
}

/** Interactive commands: only warnings, as plain text; the failure itself is printed once by the CLI. */
export function textLogger(write: (line: string) => void): Logger {
  return {
    log(level, msg) {
      if (level === 'warn') write(`warning: ${msg}\n`);
    },
  };
}

export const silentLogger: Logger = { log: () => undefined };
