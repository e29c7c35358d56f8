import { readFileSync, statSync } from 'node:fs';
import os from 'node:os';
import { LivegraftError } from '@livegraft/protocol';
import { ServerClient } from '../delivery/client.ts';
import { writeConfig, type AgentConfig } from '../state/config.ts';
import {
  checkEnrolTransport,
  parseRootSha256,
  registrableHostname,
  resolvePinnedRoot,
  type RootPin,
} from '../delivery/enrol.ts';
import { TufClient } from '../delivery/tuf-client.ts';
import { AGENT_VERSION } from '../lib/version.ts';
import type { AgentContext, OpOutcome } from './context.ts';
import type { OperationRunner } from './runner.ts';

/** A root file given on the command line; real roots are a few KB. */
const MAX_ROOT_FILE_BYTES = 512_000;

function readBoundedFile(path: string, max: number, code: string, what: string): Buffer {
  try {
    if (statSync(path).size > max) throw new LivegraftError(code, `${what} ${path} is larger than ${max} bytes`);
    return readFileSync(path);
  } catch (err) {
    if (err instanceof LivegraftError) throw err;
    throw new LivegraftError(code, `cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

export interface EnrolOptions {
  server: string;
  key: string;
  hostname?: string;
  rootFile?: string;
  /** SHA-256 of one of the server's N.root.json files, obtained out of band. */
  rootSha256?: string;
  /** Allows plain HTTP without a pinned root (a lab); a loud warning is returned. */
  insecure?: boolean;
}

export interface EnrolOutcome {
  config: AgentConfig;
  rootVersion: number | undefined;
  rootSource: string | undefined;
  warning: string | undefined;
}

/** Registers this host with a server, pins its TUF root, and writes the config file. */
export async function enroll(ctx: AgentContext, runner: OperationRunner, opts: EnrolOptions): Promise<EnrolOutcome> {
  const kernel = ctx.identity();
  if (opts.rootFile !== undefined && opts.rootSha256 !== undefined) {
    throw new LivegraftError('CONFIG_INVALID', 'give either --root FILE or --root-sha256 HEX, not both');
  }
  // An out-of-band root is checked before anything is sent or written.
  const pin: RootPin =
    opts.rootFile !== undefined
      ? {
          kind: 'file',
          bytes: readBoundedFile(opts.rootFile, MAX_ROOT_FILE_BYTES, 'TUF_ROOT_INVALID', 'root file'),
          source: opts.rootFile,
        }
      : opts.rootSha256 !== undefined
        ? { kind: 'sha256', sha256: parseRootSha256(opts.rootSha256) }
        : undefined;
  const warning = checkEnrolTransport(opts.server, pin, opts.insecure === true);
  // The server must show the pinned root before it is given the registration key.
  const pinned = pin === undefined ? undefined : await resolvePinnedRoot(ctx.deps.fetch ?? fetch, opts.server, pin);
  const client = new ServerClient({ server: opts.server, fetch: ctx.deps.fetch });
  const res = await client.enroll({
    registrationKey: opts.key,
    hostname: opts.hostname ?? registrableHostname(os.hostname()),
    kernel,
    agentVersion: AGENT_VERSION,
  });
  const served = (res as { root?: unknown }).root;
  const rootBytes = pinned?.bytes ?? (served === undefined ? undefined : Buffer.from(JSON.stringify(served)));
  const rootSource = pinned?.source ?? (served !== undefined ? 'the enrol answer' : undefined);
  const config: AgentConfig = { server: opts.server.replace(/\/+$/, ''), hostId: res.hostId, token: res.token };
  return runner.exclusive(() => {
    let rootVersion: number | undefined;
    if (rootBytes !== undefined) {
      rootVersion = TufClient.pinRoot(ctx.deps.stateDir, rootBytes, `TUF root from ${rootSource}`).signed.version;
    }
    writeConfig(ctx.deps.configPath, config);
    return Promise.resolve({ config, rootVersion, rootSource, warning });
  });
}

/** Replaces the trust anchor with a root obtained out of band (air-gapped hosts, key recovery). */
export function pinRoot(ctx: AgentContext, runner: OperationRunner, file: string): Promise<OpOutcome> {
  const bytes = readBoundedFile(file, MAX_ROOT_FILE_BYTES, 'TUF_ROOT_INVALID', 'root file');
  return runner.exclusive(() => {
    const md = TufClient.pinRoot(ctx.deps.stateDir, bytes, file);
    return Promise.resolve({ summary: `trusted TUF root is now version ${md.signed.version} from ${file}` });
  });
}
