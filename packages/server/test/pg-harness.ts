import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chown, mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * A private PostgreSQL for tests: initdb in a temp dir, postgres on a random
 * loopback port with its socket in that dir, thrown away at the end. Runs as
 * the `postgres` user when the tests run as root (initdb refuses root).
 *
 * Binaries: $LIVEGRAFT_PG_BINDIR, else `pg_config --bindir`, else the newest
 * /usr/lib/postgresql/<v>/bin (Debian/Ubuntu: apt-get install postgresql),
 * else initdb/postgres on PATH. When none is found the PostgreSQL tests are
 * skipped with a loud message, never silently.
 */

const READY_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const POLL_MS = 100;

export interface PgCluster {
  /** postgres://... for the named database (default: postgres). */
  url(database?: string): string;
  /** A fresh empty database; returns its URL. */
  createDatabase(): Promise<string>;
  /** The postmaster's process id (its backends are its children). */
  pid: number;
  stop(): Promise<void>;
}

function findBinDir(): string | undefined {
  const has = (dir: string): boolean => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres'));
  const fromEnv = process.env['LIVEGRAFT_PG_BINDIR'];
  if (fromEnv !== undefined && fromEnv !== '') return has(fromEnv) ? fromEnv : undefined;
  const pgConfig = spawnSync('pg_config', ['--bindir'], { encoding: 'utf8' });
  const configured = pgConfig.status === 0 ? pgConfig.stdout.trim() : '';
  if (configured !== '' && has(configured)) return configured;
  const debian = '/usr/lib/postgresql';
  if (existsSync(debian)) {
    const versions = readdirSync(debian)
      .filter((v) => /^[0-9]+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) if (has(join(debian, v, 'bin'))) return join(debian, v, 'bin');
  }
  for (const dir of (process.env['PATH'] ?? '').split(':')) if (dir !== '' && has(dir)) return dir;
  return undefined;
}

const BIN_DIR = findBinDir();

/** A reason to skip PostgreSQL tests (printed loudly), or false when they can run. */
export const pgSkip: string | false =
  BIN_DIR === undefined
    ? 'PostgreSQL binaries (initdb, postgres) not found: install postgresql (Debian/Ubuntu: apt-get install postgresql) or set LIVEGRAFT_PG_BINDIR'
    : false;
if (pgSkip !== false) {
  process.stderr.write(`\n!!!!!!!! SKIPPING POSTGRESQL TESTS: ${pgSkip} !!!!!!!!\n\n`);
}

function postgresUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error('running as root but there is no "postgres" user to run the test PostgreSQL as');
  }
  return { uid: Number(uid), gid: Number(gid) };
}

async function freePort(): Promise<number> {
  const srv = createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const addr = srv.address();
  srv.close();
  if (addr === null || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}

function run(cmd: string, args: string[], as: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...as });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${out}`))));
  });
}

/** Starts a throwaway cluster; throws if the binaries are missing (check pgSkip first). */
export async function startPostgres(): Promise<PgCluster> {
  if (BIN_DIR === undefined) throw new Error(pgSkip === false ? 'no PostgreSQL' : pgSkip);
  const as = postgresUser();
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-pg-'));
  if (as !== undefined) await chown(dir, as.uid, as.gid);
  const data = join(dir, 'data');
  await run(
    join(BIN_DIR, 'initdb'),
    ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C', '--no-sync'],
    as,
  );
  const port = await freePort();
  const child: ChildProcess = spawn(
    join(BIN_DIR, 'postgres'),
    [
      '-D',
      data,
      '-p',
      String(port),
      '-k',
      dir,
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      'max_connections=200',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'], ...as },
  );
  let log = '';
  child.stderr?.on('data', (d: Buffer) => (log = (log + d.toString()).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const url = (database = 'postgres'): string => `postgres://postgres@127.0.0.1:${port}/${database}`;

  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT'); // fast shutdown
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await exited;
      clearTimeout(timer);
    }
    await rm(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    const c = new pg.Client({ connectionString: url() });
    try {
      await c.connect();
      await c.end();
      break;
    } catch (err) {
      await c.end().catch(() => {});
      if (child.exitCode !== null || Date.now() > deadline) {
        await stop();
        throw new Error(`test PostgreSQL did not start: ${(err as Error).message}\n${log}`, { cause: err });
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }

  return {
    url,
    pid: child.pid ?? 0,
    async createDatabase() {
      const name = `t_${randomBytes(6).toString('hex')}`;
      const c = new pg.Client({ connectionString: url() });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${name}`);
      } finally {
        await c.end();
      }
      return url(name);
    },
    stop,
  };
}
