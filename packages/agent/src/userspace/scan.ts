import { closeSync, openSync, readdirSync, readFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { readBuildId } from './elf.ts';

/** A library build mapped by a running process. */
export interface MappedLibrary {
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/PID/stat field 22): tells a reused pid apart. */
  startTime: number;
  /** Lowest mapping of the file: the load base. */
  base: number;
  buildId: string;
  /** Path as the process sees it (its mount namespace), without " (deleted)". */
  path: string;
  /** The file was replaced or removed on disk (package upgraded) while the process kept the old one. */
  deleted: boolean;
  /** The process's command name (/proc/PID/comm). */
  comm: string;
}

interface MapLine {
  start: number;
  offset: number;
  inode: string;
  path: string;
}

function parseMaps(text: string): MapLine[] {
  const out: MapLine[] = [];
  for (const line of text.split('\n')) {
    // 7f..-7f.. r--p 00000000 fe:00 339380   /usr/lib/x86_64-linux-gnu/libc.so.6 (deleted)
    const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ ([0-9a-f]+) (\S+) (\d+)\s+(\/.*)$/.exec(line);
    if (!m || m[4] === '0') continue;
    out.push({ start: parseInt(m[1]!, 16), offset: parseInt(m[2]!, 16), inode: `${m[3]}:${m[4]}`, path: m[5]! });
  }
  return out;
}

/** Field 22 of /proc/PID/stat (after the parenthesised command, which may hold spaces). */
export function processStartTime(procRoot: string, pid: number): number | undefined {
  try {
    const stat = readFileSync(join(procRoot, String(pid), 'stat'), 'latin1');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Is this process (pid and start time) still the one we saw? */
export function sameProcess(procRoot: string, pid: number, startTime: number): boolean {
  return processStartTime(procRoot, pid) === startTime;
}

/**
 * Has this process (pid and start time) ended? Gone from /proc, its pid
 * reused by another process, or a zombie its parent has not reaped yet.
 */
export function processEnded(procRoot: string, pid: number, startTime: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(join(procRoot, String(pid), 'stat'), 'latin1');
  } catch {
    return true;
  }
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(rest[19]) !== startTime || rest[0] === 'Z' || rest[0] === 'X';
}

export interface ScanOptions {
  procRoot?: string;
  /** Only these build-ids are reported. */
  buildIds: ReadonlySet<string>;
  /** Processes never looked at (the agent itself and its children). */
  skipPids?: ReadonlySet<number>;
  /** Only these processes (default: every process). */
  pids?: readonly number[];
}

/**
 * Every process that maps a shared object with one of the wanted build-ids.
 * The build-id is read from the process's memory at the mapping's base (its
 * ELF header and notes), so files replaced on disk ("(deleted)") and files
 * inside containers are recognised by what actually runs. Within one scan,
 * a file already identified (same device and inode) is not read again.
 */
export function scanProcesses(opts: ScanOptions): MappedLibrary[] {
  const procRoot = opts.procRoot ?? '/proc';
  const known = new Map<string, string | undefined>();
  const found: MappedLibrary[] = [];
  const pids =
    opts.pids ??
    readdirSync(procRoot)
      .filter((n) => /^\d+$/.test(n))
      .map(Number);
  for (const pid of pids) {
    if (opts.skipPids?.has(pid)) continue;
    let maps: MapLine[];
    try {
      maps = parseMaps(readFileSync(join(procRoot, String(pid), 'maps'), 'latin1'));
    } catch {
      continue; // gone, or a kernel thread
    }
    const seen = new Set<string>();
    let memFd: number | undefined;
    try {
      for (const m of maps) {
        if (m.offset !== 0 || seen.has(m.inode) || !/\.so(\.|$| )/.test(m.path)) continue;
        seen.add(m.inode);
        let id = known.get(m.inode);
        if (id === undefined) {
          try {
            memFd ??= openSync(join(procRoot, String(pid), 'mem'), 'r');
            const fd = memFd;
            id = readBuildId((pos, len) => {
              const b = Buffer.alloc(len);
              return b.subarray(0, readSync(fd, b, 0, len, pos));
            }, m.start);
          } catch {
            id = undefined;
          }
          if (id !== undefined) known.set(m.inode, id);
        }
        if (id === undefined || !opts.buildIds.has(id)) continue;
        const startTime = processStartTime(procRoot, pid);
        if (startTime === undefined) break;
        const deleted = m.path.endsWith(' (deleted)');
        let comm = '';
        try {
          comm = readFileSync(join(procRoot, String(pid), 'comm'), 'utf8').trim();
        } catch {
          // exited meanwhile: the helper will say so
        }
        found.push({
          pid,
          startTime,
          base: m.start,
          buildId: id,
          path: deleted ? m.path.slice(0, -' (deleted)'.length) : m.path,
          deleted,
          comm,
        });
      }
    } finally {
      if (memFd !== undefined) closeSync(memFd);
    }
  }
  return found;
}
