/**
 * Minimal Debian 12 roots for package tests: debootstrap (minbase) runs once
 * and is kept as a tarball in the user cache; every test unpacks a fresh copy
 * and works in it with chroot.
 */
import { execFile, type ExecFileOptions } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { defaultCacheDir } from '../packages/builder/src/kernel/paths.ts';

const SUITE = 'bookworm';
const MIRROR = process.env['LIVEGRAFT_DEBIAN_MIRROR'] ?? 'http://deb.debian.org/debian';
/** debootstrap from the archive took about 2 minutes here; apt installs well under one. */
const DEBOOTSTRAP_TIMEOUT_MS = 20 * 60_000;
export const APT_TIMEOUT_MS = 10 * 60_000;

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function run(
  cmd: string,
  args: string[],
  opts: ExecFileOptions & { timeoutMs?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(
      cmd,
      args,
      { ...opts, timeout: opts.timeoutMs ?? 120_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
        resolve({ code, stdout: String(stdout), stderr: String(stderr) + (code === -1 ? String(err?.message) : '') });
      },
    );
  });
}

export async function runOk(cmd: string, args: string[], opts: ExecFileOptions & { timeoutMs?: number } = {}) {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

/** The cached minbase tarball (made once, under a lock, by debootstrap). */
export async function debianBaseTarball(): Promise<string> {
  const dir = join(defaultCacheDir(), 'debian');
  mkdirSync(dir, { recursive: true });
  const tar = join(dir, `${SUITE}-minbase.tar`);
  if (existsSync(tar)) return tar;
  const work = join(dir, `${SUITE}-minbase.d`);
  const script = [
    'set -e',
    `[ -f '${tar}' ] && exit 0`,
    `rm -rf '${work}'`,
    `debootstrap --variant=minbase ${SUITE} '${work}' '${MIRROR}' >'${work}.log' 2>&1 || { tail -20 '${work}.log' >&2; exit 1; }`,
    `tar -C '${work}' -cf '${tar}.part' .`,
    `mv '${tar}.part' '${tar}'`,
    `rm -rf '${work}' '${work}.log'`,
  ].join('\n');
  await runOk('flock', [join(dir, '.lock'), 'sh', '-c', script], { timeoutMs: DEBOOTSTRAP_TIMEOUT_MS });
  return tar;
}

/** A fresh Debian 12 root in `dir` with the package lists fetched. */
export async function freshDebianRoot(dir: string): Promise<string> {
  const tar = await debianBaseTarball();
  mkdirSync(dir, { recursive: true });
  await runOk('tar', ['-C', dir, '-xf', tar], { timeoutMs: 300_000 });
  await chrootOk(dir, ['apt-get', 'update', '-qq'], APT_TIMEOUT_MS);
  return dir;
}

const CHROOT_ENV = {
  PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
  DEBIAN_FRONTEND: 'noninteractive',
  LANG: 'C.UTF-8',
  HOME: '/root',
};

export function chroot(root: string, argv: string[], timeoutMs = 120_000, env: Record<string, string> = {}) {
  return run('chroot', [root, ...argv], { env: { ...CHROOT_ENV, ...env }, timeoutMs });
}

export async function chrootOk(root: string, argv: string[], timeoutMs = 120_000, env: Record<string, string> = {}) {
  const r = await chroot(root, argv, timeoutMs, env);
  if (r.code !== 0) throw new Error(`chroot ${argv.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}
