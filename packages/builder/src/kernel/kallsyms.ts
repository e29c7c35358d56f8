import { mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { newcArchive } from './initramfs.ts';
import { runChecked, type StepContext } from './run.ts';
import { TOOLS, findProgram, requireTools } from './tools.ts';

/** A TCG boot plus ~5 MB over the emulated UART takes ~35 s on 2 cores; allow slow machines. */
export const KALLSYMS_BOOT_TIMEOUT_MS = 10 * 60_000;
/** /proc/kallsyms of a distribution kernel without modules is ~5 MB. */
export const MAX_KALLSYMS_BYTES = 64 * 1024 * 1024;
/** Debian 6.1's vmlinux has ~94,000 symbols; far fewer means the dump was cut or filtered. */
export const MIN_KALLSYMS_LINES = 50_000;

const BEGIN = 'LG-KALLSYMS-BEGIN';
const END = 'LG-KALLSYMS-END';

export interface KallsymsEntry {
  address: bigint;
  /** nm-style type letter: t, T, d, D, b, B, r, R, A, W, V, ... */
  type: string;
  name: string;
  /** The module a symbol belongs to, when /proc/kallsyms names one. */
  module?: string;
}

/** Parses /proc/kallsyms text, in file order. Malformed lines are an error, not skipped. */
export function parseKallsyms(text: string): KallsymsEntry[] {
  const out: KallsymsEntry[] = [];
  const lines = text.split('\n');
  for (const [i, raw] of lines.entries()) {
    const line = raw.replace(/\r$/, '');
    if (line === '') continue;
    const m = /^([0-9a-fA-F]+) (\S) (\S+)(?:\t\[(\S+)\])?$/.exec(line);
    if (m === null)
      throw new LivegraftError(
        'KALLSYMS_INVALID',
        `kallsyms line ${i + 1} is malformed: ${JSON.stringify(line.slice(0, 120))}`,
      );
    const entry: KallsymsEntry = { address: BigInt(`0x${m[1]}`), type: m[2] ?? '', name: m[3] ?? '' };
    if (m[4] !== undefined) entry.module = m[4];
    out.push(entry);
  }
  return out;
}

/** Throws KALLSYMS_INVALID unless the dump looks like a whole, unrestricted vmlinux kallsyms. */
export function validateKallsyms(entries: readonly KallsymsEntry[]): void {
  if (entries.length < MIN_KALLSYMS_LINES)
    throw new LivegraftError(
      'KALLSYMS_INVALID',
      `only ${entries.length} kallsyms lines (expected at least ${MIN_KALLSYMS_LINES})`,
    );
  const start = entries.find((e) => e.name === 'start_kernel');
  if (start === undefined || start.address === 0n)
    throw new LivegraftError(
      'KALLSYMS_INVALID',
      'kallsyms has no address for start_kernel (kptr_restrict hid the addresses?)',
    );
}

/** True when the ELF file at `file` has no PT_INTERP, i.e. it runs without a dynamic loader. */
export async function isStaticElf(file: string): Promise<boolean> {
  const buf = await readFile(file);
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46 || buf[4] !== 2) return false;
  const phoff = Number(buf.readBigUInt64LE(32));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  for (let i = 0; i < phnum; i++) {
    const at = phoff + i * phentsize;
    if (at + 4 > buf.length) return false;
    if (buf.readUInt32LE(at) === 3) return false; // PT_INTERP
  }
  return true;
}

/** The guest's /init: dump /proc/kallsyms raw to the second UART, then power off. */
const INIT_SCRIPT = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t devtmpfs dev /dev
echo 0 > /proc/sys/kernel/kptr_restrict
/bin/busybox stty -F /dev/ttyS1 raw -echo
{ echo ${BEGIN}; /bin/busybox cat /proc/kallsyms; echo ${END}; } > /dev/ttyS1
/bin/busybox poweroff -f
`;

/**
 * Boots `vmlinuz` in QEMU (TCG, nokaslr) with a busybox initramfs that copies
 * /proc/kallsyms to a serial port file, validates it and writes it to `out`.
 */
export async function dumpKallsyms(
  ctx: StepContext,
  vmlinuz: string,
  out: string,
): Promise<{ lines: number; ms: number }> {
  await requireTools([TOOLS.qemu, TOOLS.busybox]);
  const busybox = (await findProgram('busybox')) ?? '';
  if (!(await isStaticElf(busybox)))
    throw new LivegraftError(
      'TOOLCHAIN_MISSING',
      `${busybox} is not statically linked; install it with: apt-get install busybox-static`,
    );
  if (out.includes(','))
    throw new LivegraftError('KALLSYMS_BOOT_FAILED', `QEMU cannot take a serial file path with a comma: ${out}`);
  const work = `${out}.work-${process.pid}`;
  await rm(work, { recursive: true, force: true });
  await mkdir(work, { recursive: true });
  try {
    const initrd = path.join(work, 'initrd.cpio');
    await writeFile(
      initrd,
      newcArchive([
        { name: 'bin', mode: 0o040755 },
        { name: 'bin/busybox', mode: 0o100755, data: await readFile(busybox) },
        { name: 'init', mode: 0o100755, data: Buffer.from(INIT_SCRIPT) },
      ]),
    );
    const consoleLog = path.join(work, 'console.log');
    const dump = path.join(work, 'kallsyms.raw');
    const started = Date.now();
    ctx.log(`booting ${path.basename(vmlinuz)} in QEMU to read /proc/kallsyms`);
    await runChecked(
      ctx,
      'KALLSYMS_BOOT_FAILED',
      `booting ${vmlinuz} to read /proc/kallsyms`,
      'qemu-system-x86_64',
      [
        ...['-accel', 'tcg', '-m', '1024', '-nodefaults', '-display', 'none', '-no-reboot'],
        ...['-kernel', vmlinuz, '-initrd', initrd, '-append', 'nokaslr console=ttyS0 panic=-1'],
        ...['-serial', `file:${consoleLog}`, '-serial', `file:${dump}`],
      ],
      { timeoutMs: KALLSYMS_BOOT_TIMEOUT_MS },
    );
    const ms = Date.now() - started;
    const size = (await stat(dump).catch(() => undefined))?.size ?? 0;
    if (size > MAX_KALLSYMS_BYTES)
      throw new LivegraftError(
        'KALLSYMS_INVALID',
        `the guest wrote ${size} bytes of kallsyms, more than ${MAX_KALLSYMS_BYTES}`,
      );
    const text = size === 0 ? '' : (await readFile(dump, 'utf8')).replace(/\r/g, '');
    const begin = text.indexOf(`${BEGIN}\n`);
    const end = text.indexOf(`${END}\n`, begin);
    if (begin < 0 || end < 0) {
      const tailOfConsole = await readTail(consoleLog, 4000);
      throw new LivegraftError(
        'KALLSYMS_BOOT_FAILED',
        `the guest did not finish writing /proc/kallsyms; console ends:\n${tailOfConsole}`,
      );
    }
    const body = text.slice(begin + BEGIN.length + 1, end);
    const entries = parseKallsyms(body);
    validateKallsyms(entries);
    await writeFile(`${out}.tmp`, body);
    await rename(`${out}.tmp`, out);
    return { lines: entries.length, ms };
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

async function readTail(file: string, bytes: number): Promise<string> {
  try {
    const h = await open(file, 'r');
    try {
      const size = (await h.stat()).size;
      const buf = Buffer.alloc(Math.min(bytes, size));
      await h.read(buf, 0, buf.length, size - buf.length);
      return buf.toString('utf8');
    } finally {
      await h.close();
    }
  } catch {
    return '(no console output)';
  }
}

/** Reads a cached kallsyms file (bounded) into entries, in file order. */
export async function readKallsymsFile(file: string): Promise<KallsymsEntry[]> {
  const size = (await stat(file)).size;
  if (size > MAX_KALLSYMS_BYTES)
    throw new LivegraftError('KALLSYMS_INVALID', `${file} has ${size} bytes, more than ${MAX_KALLSYMS_BYTES}`);
  return parseKallsyms(await readFile(file, 'utf8'));
}
