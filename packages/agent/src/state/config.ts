import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Type, type Static } from 'typebox';
import { HostTags, LivegraftError, ValidationError, parseJson, validator } from '@livegraft/protocol';
import { writeFileAtomic } from '../lib/fs-atomic.ts';

export const DEFAULT_CONFIG_PATH = '/etc/livegraft/agent.json';
export const DEFAULT_STATE_DIR = '/var/lib/livegraft';
/** The config holds a bearer token; it is never world-readable. */
export const CONFIG_FILE_MODE = 0o600;
const MAX_CONFIG_BYTES = 64 * 1024;

/** /etc/livegraft/agent.json, written by `enroll`. */
export const AgentConfig = Type.Object(
  {
    server: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2048 }),
    hostId: Type.String({ minLength: 1, maxLength: 128 }),
    token: Type.String({ minLength: 1, maxLength: 4096 }),
    checkinIntervalSec: Type.Optional(Type.Integer({ minimum: 10, maximum: 7 * 24 * 3600 })),
    transitionTimeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
    /** Base URL of a TUF mirror (metadata under /tuf/metadata, targets under /tuf/targets); default: server. */
    mirror: Type.Optional(Type.String({ pattern: '^(https?|file)://[^\\s]+$', maxLength: 2048 })),
    /** The kill-switch file; default: `disable` beside this config file. */
    disableFile: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** Reported at every check-in; the server targets pins and rollbacks by tag. */
    tags: Type.Optional(HostTags),
    /** Hold the server's push stream open in `run` (default true); false leaves only the periodic check-in. */
    push: Type.Optional(Type.Boolean()),
    /** Follow the kernel log in `run` for tripwire hits and warnings/oopses (default true). */
    kernelLog: Type.Optional(Type.Boolean()),
    /** Bounds on one signed update (metadata + module download). */
    delivery: Type.Optional(
      Type.Object(
        {
          requestTimeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
          totalTimeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 6 * 3600 })),
          stallTimeoutSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 3600 })),
          minBytesPerSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 1024 * 1024 * 1024 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type AgentConfig = Static<typeof AgentConfig>;
const configValidator = validator(AgentConfig, 'agent config');

/** Reads and validates the config once; every later use trusts the typed value. */
export function loadConfig(path: string): AgentConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new LivegraftError(
        'CONFIG_MISSING',
        `no agent config at ${path}: enroll this host first (livegraft-agent enroll --server URL --key KEY)`,
      );
    }
    throw new LivegraftError('CONFIG_UNREADABLE', `cannot read agent config ${path}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  if (text.length > MAX_CONFIG_BYTES) throw new LivegraftError('CONFIG_INVALID', `agent config ${path} is too large`);
  try {
    return parseJson(configValidator, text, `agent config ${path}`);
  } catch (err) {
    // Name the file as well as the field, so the admin knows what to edit.
    if (err instanceof ValidationError) throw new ValidationError(`agent config ${path}`, err.problems);
    throw err;
  }
}

/** The kill-switch file: `disableFile` from the config, else `disable` beside the config file. */
export function disableFilePath(configPath: string, config: AgentConfig | undefined): string {
  return config?.disableFile ?? join(dirname(configPath), 'disable');
}

/** Like loadConfig, but a missing file is `undefined` (status, boot and uname work unenrolled). */
export function loadConfigIfPresent(path: string): AgentConfig | undefined {
  try {
    return loadConfig(path);
  } catch (err) {
    if (err instanceof LivegraftError && err.code === 'CONFIG_MISSING') return undefined;
    throw err;
  }
}

export function writeConfig(path: string, config: AgentConfig): void {
  configValidator.parse(config);
  writeFileAtomic(path, `${JSON.stringify(config, null, 2)}\n`, CONFIG_FILE_MODE);
}
