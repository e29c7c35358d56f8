import { closeSync, constants, openSync, readSync } from 'node:fs';

export const DEFAULT_KMSG_PATH = '/dev/kmsg';
/** Records read per call; the kernel ring buffer holds a few thousand. */
const MAX_KMSG_RECORDS = 20_000;
const MAX_KMSG_RECORD_BYTES = 8192;
/** Lines attached to an error message. */
export const KMSG_TAIL_LINES = 12;

/**
 * Best effort: the last kernel log lines mentioning any of `needles`.
 * /dev/kmsg hands out one record per read() and EAGAIN at the end when opened
 * O_NONBLOCK; a plain file (tests) just reaches EOF. Any failure yields [].
 */
export function readKernelLog(needles: string[], path = DEFAULT_KMSG_PATH, max = KMSG_TAIL_LINES): string[] {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return [];
  }
  const keep: string[] = [];
  const buf = Buffer.alloc(MAX_KMSG_RECORD_BYTES);
  try {
    for (let i = 0; i < MAX_KMSG_RECORDS; i++) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        // EPIPE: records were overwritten while we read; the next read continues.
        if ((err as NodeJS.ErrnoException).code === 'EPIPE') continue;
        break;
      }
      if (n <= 0) break;
      for (const record of buf.toString('utf8', 0, n).split('\n')) {
        // "prio,seq,usec,flags;message"; continuation lines start with a space.
        const semi = record.indexOf(';');
        const text = semi >= 0 && /^[0-9]+,/.test(record) ? record.slice(semi + 1) : record.trim();
        if (text !== '' && needles.some((x) => text.includes(x))) {
          keep.push(text);
          if (keep.length > max) keep.shift();
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return keep;
}
