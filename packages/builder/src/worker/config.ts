import { existsSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LivegraftError } from '@livegraft/protocol';
import { defaultCacheDir } from '../kernel/index.ts';

/** The worker's command-line options, as given. */
export interface WorkerFlags {
  server?: string;
  tokenFile?: string;
  id?: string;
  cacheDir?: string;
  workDir?: string;
  poll?: string;
  once?: boolean;
  untilIdle?: boolean;
  agent?: string;
  node?: string;
  validationTimeout?: string;
}

/** The worker's configuration, checked once at start. */
export interface WorkerConfig {
  server: URL;
  token: string;
  workerId: string;
  cacheDir: string;
  workDir: string;
  pollMs: number;
  maxJobs?: number;
  untilIdle: boolean;
  agentBundle: string;
  node: string;
  validationTimeoutMs?: number;
}

/** The agent bundle beside this checkout's builder (npm run build writes it). */
const DEFAULT_AGENT = fileURLToPath(new URL('../../../agent/dist/livegraft-agent.mjs', import.meta.url));
const MAX_TOKEN_BYTES = 4096;
export const TOKEN_ENV = 'LIVEGRAFT_WORKER_TOKEN';

function bad(message: string): LivegraftError {
  return new LivegraftError('USAGE', message);
}

function seconds(flag: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  if (!/^[0-9]+$/.test(raw) || Number(raw) < min || Number(raw) > max)
    throw bad(`${flag} ${raw}: give a whole number of seconds from ${min} to ${max}`);
  return Number(raw);
}

function readToken(file: string | undefined, env: NodeJS.ProcessEnv): string {
  if (file === undefined) {
    const t = env[TOKEN_ENV]?.trim();
    if (t === undefined || t === '')
      throw bad(
        `--token-file is required (a worker token: livegraft tokens create --role worker), or set ${TOKEN_ENV}`,
      );
    return t;
  }
  let text: string;
  try {
    if (statSync(file).size > MAX_TOKEN_BYTES) throw bad(`--token-file ${file}: larger than ${MAX_TOKEN_BYTES} bytes`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if (err instanceof LivegraftError) throw err;
    throw bad(`--token-file ${file}: cannot read it (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  const token = text.trim();
  if (token === '' || /\s/.test(token)) throw bad(`--token-file ${file}: holds no single token`);
  return token;
}

/** Checks every option once; throws USAGE naming the option and what is wrong. */
export function workerConfig(f: WorkerFlags, env: NodeJS.ProcessEnv = process.env): WorkerConfig {
  if (f.server === undefined)
    throw bad('--server is required (the Livegraft server URL, e.g. https://patches.example.org)');
  let server: URL;
  try {
    server = new URL(f.server);
  } catch {
    throw bad(`--server ${f.server}: not a URL; give the scheme too, e.g. https://${f.server}`);
  }
  if (server.protocol !== 'https:' && server.protocol !== 'http:')
    throw bad(`--server ${f.server}: use an http:// or https:// URL`);
  const agentBundle = path.resolve(f.agent ?? DEFAULT_AGENT);
  if (!existsSync(agentBundle))
    throw bad(
      `--agent ${agentBundle}: no agent bundle there (npm run build writes packages/agent/dist/livegraft-agent.mjs)`,
    );
  const node = path.resolve(f.node ?? process.execPath);
  if (!existsSync(node)) throw bad(`--node ${node}: no such program`);
  if (f.id !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/.test(f.id))
    throw bad(`--id ${f.id}: use letters, digits and . _ : @ - (up to 128)`);
  const cacheDir = path.resolve(f.cacheDir ?? defaultCacheDir());
  const timeout =
    f.validationTimeout === undefined ? undefined : seconds('--validation-timeout', f.validationTimeout, 0, 60, 7200);
  return {
    server,
    token: readToken(f.tokenFile, env),
    workerId:
      f.id ??
      `${
        hostname()
          .replace(/[^A-Za-z0-9_.:@-]/g, '-')
          .slice(0, 100) || 'worker'
      }:${process.pid}`,
    cacheDir,
    workDir: path.resolve(f.workDir ?? path.join(cacheDir, 'worker')),
    pollMs: seconds('--poll', f.poll, 10, 1, 3600) * 1000,
    ...(f.once === true ? { maxJobs: 1 } : {}),
    untilIdle: f.untilIdle === true,
    agentBundle,
    node,
    ...(timeout !== undefined ? { validationTimeoutMs: timeout * 1000 } : {}),
  };
}
