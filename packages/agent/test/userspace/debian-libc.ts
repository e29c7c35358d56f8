// Test support: Debian's real libc6 of a given version, extracted from its
// .deb into the user cache (apt-get download + dpkg -x, nothing installed),
// and programs run against it through its own loader.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { readBuildId } from '../../src/userspace/elf.ts';

/** The vulnerable build the tests patch (bookworm-security); the point release ships +deb12u14. */
export const LIBC_VERSION = '2.36-9+deb12u7';

function cacheRoot(): string {
  const base = process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache');
  return join(base, 'livegraft', 'userspace');
}

export interface ExtractedLibc {
  root: string;
  loader: string;
  libDir: string;
  libc: string;
}

/** Downloads and extracts libc6=version once; later calls reuse the tree. */
export function ensureLibc(version = LIBC_VERSION): ExtractedLibc {
  const root = join(cacheRoot(), 'root', `libc6_${version}`);
  const libDir = join(root, 'lib', 'x86_64-linux-gnu');
  const done = join(root, '.extracted');
  if (!existsSync(done)) {
    const debs = join(cacheRoot(), 'debs');
    mkdirSync(debs, { recursive: true });
    const file = `libc6_${version.replace(':', '%3a')}_amd64.deb`;
    if (!existsSync(join(debs, file)))
      execFileSync('apt-get', ['download', `libc6=${version}`], { cwd: debs, stdio: 'pipe' });
    const tmp = `${root}.tmp${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    execFileSync('dpkg', ['-x', join(debs, file), tmp], { stdio: 'pipe' });
    execFileSync('touch', [join(tmp, '.extracted')]);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
  }
  const usrLib = join(root, 'usr', 'lib', 'x86_64-linux-gnu');
  const dir = existsSync(join(usrLib, 'libc.so.6')) ? usrLib : libDir;
  const loaderDir = existsSync(join(root, 'usr', 'lib64')) ? join(root, 'usr', 'lib64') : join(root, 'lib64');
  return { root, loader: join(loaderDir, 'ld-linux-x86-64.so.2'), libDir: dir, libc: join(dir, 'libc.so.6') };
}

export interface LibSymbol {
  offset: number;
  size: number;
}

/** A dynamic symbol of a shared object (readelf), its size and its original bytes' sha256. */
export function dynSymbol(lib: string, name: string): LibSymbol & { sha256: string } {
  const out = execFileSync('readelf', ['-W', '--dyn-syms', lib], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => new RegExp(`\\s${name}@@?GLIBC`).test(l) || l.trim().endsWith(` ${name}`));
  if (line === undefined) throw new Error(`${name} not in ${lib}`);
  const cols = line.trim().split(/\s+/);
  const offset = parseInt(cols[1]!, 16);
  const size = Number(cols[2]);
  const file = readFileSync(lib);
  const at = fileOffset(lib, offset);
  return {
    offset,
    size,
    sha256: createHash('sha256')
      .update(file.subarray(at, at + size))
      .digest('hex'),
  };
}

/** File offset of a virtual address, through the PT_LOAD headers (readelf). */
function fileOffset(lib: string, vaddr: number): number {
  const out = execFileSync('readelf', ['-lW', lib], { encoding: 'utf8' });
  for (const l of out.split('\n')) {
    const m = /^\s*LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/.exec(l);
    if (!m) continue;
    const off = parseInt(m[1]!, 16);
    const va = parseInt(m[2]!, 16);
    const size = parseInt(m[3]!, 16);
    if (vaddr >= va && vaddr < va + size) return vaddr - va + off;
  }
  throw new Error(`0x${vaddr.toString(16)} is in no load segment of ${lib}`);
}

export function fileBuildId(path: string): string {
  const buf = readFileSync(path);
  const id = readBuildId((pos, len) => buf.subarray(pos, pos + len));
  if (id === undefined) throw new Error(`${path} has no build-id`);
  return id;
}

/** Compiles a test program (dynamically linked, run later through an extracted loader). */
export function compile(source: string, out: string, extra: string[] = []): string {
  execFileSync('gcc', ['-O2', '-pthread', '-o', out, source, ...extra], { stdio: 'pipe' });
  return out;
}

/** A running target: its pid and a line-based conversation (commands on stdin, answers on stdout). */
export class Target {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: Interface;
  private readonly queue: string[] = [];
  private waiters: ((l: string) => void)[] = [];
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(libc: ExtractedLibc, program: string, args: string[], libDir = libc.libDir) {
    this.child = spawn(libc.loader, ['--library-path', libDir, program, ...args], { stdio: 'pipe' });
    this.lines = createInterface({ input: this.child.stdout });
    this.lines.on('line', (l) => {
      const w = this.waiters.shift();
      if (w) w(l);
      else this.queue.push(l);
    });
    this.exit = new Promise((resolve) => this.child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  get pid(): number {
    return this.child.pid!;
  }

  next(): Promise<string> {
    const l = this.queue.shift();
    if (l !== undefined) return Promise.resolve(l);
    return new Promise((resolve, reject) => {
      this.waiters.push(resolve);
      this.exit.then(() => reject(new Error(`target ${this.pid} exited`)), reject);
    });
  }

  async ready(): Promise<void> {
    const l = await this.next();
    if (!l.startsWith('ready')) throw new Error(`target said ${l}`);
  }

  /** Counts of calls that returned the original value, the marker, and anything else. */
  async stats(): Promise<{ orig: number; marker: number; other: number }> {
    this.child.stdin.write('stats\n');
    const m = /^5=(\d+) 1005=(\d+) other=(\d+)$/.exec(await this.next());
    if (!m) throw new Error('bad stats line');
    return { orig: Number(m[1]), marker: Number(m[2]), other: Number(m[3]) };
  }

  /** Waits until the counters moved on (the threads keep calling). */
  async progress(which: 'orig' | 'marker', by = 100_000): Promise<{ orig: number; marker: number; other: number }> {
    const start = (await this.stats())[which];
    for (;;) {
      await new Promise((r) => setTimeout(r, 50));
      const s = await this.stats();
      if (s[which] >= start + by) return s;
    }
  }

  stop(): void {
    this.child.kill('SIGKILL');
  }
}

export function listDir(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir) : [];
}
