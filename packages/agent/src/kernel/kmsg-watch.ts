import { closeSync, constants, openSync, readSync } from 'node:fs';
import type { KernelEvent } from '@livegraft/protocol';
import type { Clock } from '../lib/clock.ts';
import type { Logger } from '../lib/log.ts';

/** How often the follower looks for new records; /dev/kmsg opened O_NONBLOCK never blocks the event loop. */
export const KMSG_POLL_MS = 500;
/** After the kernel log could not be opened. */
export const KMSG_REOPEN_MS = 30_000;
/** /dev/kmsg needs a buffer that holds one whole record (the kernel's CONSOLE_EXT_LOG_MAX). */
const READ_BUFFER_BYTES = 8192;
/** Records (or reads) handled per poll, and skipped when seeking to the end at start. */
const MAX_READS_PER_POLL = 2000;
const MAX_READS_AT_START = 100_000;
/** A line longer than this (in a plain file or FIFO) is dropped rather than buffered. */
const MAX_LINE_CHARS = READ_BUFFER_BYTES;
/** Kernel events kept for the next check-in; the server takes at most 100 per check-in. */
export const MAX_KERNEL_EVENTS = 100;
const MAX_EVENT_MESSAGE = 4000;

export interface KmsgRecord {
  text: string;
  /** syslog facility: 0 is the kernel itself. Undefined for a line without the /dev/kmsg prefix. */
  facility?: number;
  level?: number;
  seq?: number;
  /** Microseconds since boot. */
  usec?: number;
}

const RECORD_RE = /^([0-9]{1,4}),([0-9]{1,20}),([0-9]{1,20}),[^;]*;(.*)$/;

/** `prio,seq,usec,flags;text` (a /dev/kmsg record) or a bare line (a dmesg dump, a test file). */
export function parseKmsgRecord(line: string): KmsgRecord | undefined {
  if (line === '' || line.startsWith(' ')) return undefined; // continuation (dictionary) lines
  const m = RECORD_RE.exec(line);
  if (m === null) return { text: line.trimEnd() };
  const prio = Number(m[1]);
  return {
    text: (m[4] ?? '').trimEnd(),
    facility: prio >> 3,
    level: prio & 7,
    seq: Number(m[2]),
    usec: Number(m[3]),
  };
}

/** Which kernel log lines are warnings, oopses, BUGs or panics (what halts a rollout after an apply). */
export function classifyKernelLine(text: string): KernelEvent['kind'] | undefined {
  if (/^WARNING: /.test(text)) return 'warn';
  if (/^BUG: |^kernel BUG at /.test(text)) return 'bug';
  if (/^Oops: |^Oops[ #\]]|^general protection fault/.test(text)) return 'oops';
  if (/^Kernel panic - not syncing/.test(text)) return 'panic';
  if (/^livepatch: .*\b(failed|error|unable|timed out|refus)/i.test(text)) return 'livepatch';
  return undefined;
}

/** Kernel events waiting for a check-in: bounded, oldest dropped first. */
export class KernelEventQueue {
  #items: KernelEvent[] = [];
  dropped = 0;

  add(kind: KernelEvent['kind'], message: string, at: string): void {
    this.#items.push({ at, kind, message: message.slice(0, MAX_EVENT_MESSAGE) });
    while (this.#items.length > MAX_KERNEL_EVENTS) {
      this.#items.shift();
      this.dropped++;
    }
  }

  pending(): KernelEvent[] {
    return [...this.#items];
  }

  /** The server has these (the check-in that carried them succeeded). */
  ack(sent: KernelEvent[]): void {
    const done = new Set(sent);
    this.#items = this.#items.filter((e) => !done.has(e));
  }
}

export interface KmsgFollowerOptions {
  path: string;
  timers: Clock;
  log: Logger;
  onRecord: (r: KmsgRecord) => void;
  pollMs?: number;
}

/**
 * Follows the kernel log (/dev/kmsg, or a FIFO or plain file standing in for
 * it): opens it O_NONBLOCK, skips what is already there (old records must not
 * be reported again), then polls for new records. Each read of /dev/kmsg is
 * one record; a plain file or FIFO is split into lines. Never throws; a log
 * it cannot open is retried every KMSG_REOPEN_MS.
 */
export class KmsgFollower {
  readonly #o: KmsgFollowerOptions;
  readonly #buf = Buffer.alloc(READ_BUFFER_BYTES);
  #partial = '';
  #lastSeq = -1;

  constructor(o: KmsgFollowerOptions) {
    this.#o = o;
  }

  async run(stop: AbortSignal): Promise<void> {
    const { timers, log, path } = this.#o;
    let warned = false;
    while (!stop.aborted) {
      let fd: number;
      try {
        fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
      } catch (err) {
        if (!warned) log.log('warn', `cannot follow the kernel log ${path}: ${(err as Error).message}`);
        warned = true;
        await timers.sleep(KMSG_REOPEN_MS, stop);
        continue;
      }
      try {
        this.#drain(fd, MAX_READS_AT_START, false);
        log.log('debug', `following the kernel log ${path}`);
        while (!stop.aborted) {
          await timers.sleep(this.#o.pollMs ?? KMSG_POLL_MS, stop);
          if (stop.aborted) break;
          this.#drain(fd, MAX_READS_PER_POLL, true);
        }
      } catch (err) {
        log.log('warn', `reading the kernel log ${path} failed: ${(err as Error).message}; reopening`);
        await timers.sleep(KMSG_REOPEN_MS, stop);
      } finally {
        closeSync(fd);
      }
    }
  }

  /** Reads what is available now; `deliver` false only notes where the log ends. */
  #drain(fd: number, maxReads: number, deliver: boolean): void {
    for (let i = 0; i < maxReads; i++) {
      let n: number;
      try {
        n = readSync(fd, this.#buf, 0, this.#buf.length, null);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        // EPIPE: records were overwritten before we read them; the next read goes on from the oldest left.
        if (code === 'EPIPE') continue;
        if (code === 'EAGAIN' || code === 'EWOULDBLOCK') return;
        throw err;
      }
      if (n <= 0) return;
      this.#lines(this.#buf.toString('utf8', 0, n), deliver);
    }
  }

  #lines(text: string, deliver: boolean): void {
    const parts = (this.#partial + text).split('\n');
    const tail = parts.pop() ?? '';
    this.#partial = tail.length > MAX_LINE_CHARS ? '' : tail;
    for (const line of parts) {
      const r = parseKmsgRecord(line);
      if (r === undefined) continue;
      if (r.seq !== undefined) {
        if (r.seq <= this.#lastSeq) continue;
        this.#lastSeq = r.seq;
      }
      if (deliver) this.#o.onRecord(r);
    }
  }
}
