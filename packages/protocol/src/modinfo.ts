import { LivegraftError } from './errors.ts';

/** Largest .modinfo section we read; real ones are a few hundred bytes. */
const MAX_MODINFO_BYTES = 64 * 1024;

/**
 * Reads the `.modinfo` section of a kernel module (ELF64 little-endian, as on
 * x86_64 and arm64) without running anything. Keys may repeat (e.g. `alias`),
 * so each maps to every value in order.
 */
export function parseModinfo(elf: Uint8Array): Map<string, string[]> {
  const buf = Buffer.from(elf.buffer, elf.byteOffset, elf.byteLength);
  const bad = (why: string): LivegraftError =>
    new LivegraftError('MODULE_MALFORMED', `not a valid kernel module: ${why}`);
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw bad('no ELF header');
  if (buf[4] !== 2) throw bad('not a 64-bit ELF file');
  if (buf[5] !== 1) throw bad('not a little-endian ELF file');
  if (buf.readUInt16LE(16) !== 1) throw bad('not a relocatable object (ET_REL)');
  const shoff = Number(buf.readBigUInt64LE(40));
  const shentsize = buf.readUInt16LE(58);
  const shnum = buf.readUInt16LE(60);
  const shstrndx = buf.readUInt16LE(62);
  if (shentsize < 64 || shnum === 0 || shstrndx >= shnum) throw bad('bad section table');
  if (shoff + shnum * shentsize > buf.length) throw bad('section table past end of file (truncated?)');
  const section = (i: number): { name: number; offset: number; size: number } => {
    const at = shoff + i * shentsize;
    return {
      name: buf.readUInt32LE(at),
      offset: Number(buf.readBigUInt64LE(at + 24)),
      size: Number(buf.readBigUInt64LE(at + 32)),
    };
  };
  const strtab = section(shstrndx);
  if (strtab.offset + strtab.size > buf.length) throw bad('section names past end of file (truncated?)');
  const nameOf = (off: number): string => {
    const start = strtab.offset + off;
    const end = buf.indexOf(0, start);
    return buf.toString('latin1', start, end < 0 || end > strtab.offset + strtab.size ? start : end);
  };
  for (let i = 0; i < shnum; i++) {
    const s = section(i);
    if (nameOf(s.name) !== '.modinfo') continue;
    if (s.size > MAX_MODINFO_BYTES) throw bad('.modinfo section too large');
    if (s.offset + s.size > buf.length) throw bad('.modinfo past end of file (truncated?)');
    const out = new Map<string, string[]>();
    for (const entry of buf.toString('utf8', s.offset, s.offset + s.size).split('\0')) {
      const eq = entry.indexOf('=');
      if (eq <= 0) continue;
      const key = entry.slice(0, eq);
      const list = out.get(key) ?? [];
      list.push(entry.slice(eq + 1));
      out.set(key, list);
    }
    return out;
  }
  throw bad('no .modinfo section');
}

/** The single value of a modinfo key, or undefined. */
export function modinfoValue(info: Map<string, string[]>, key: string): string | undefined {
  return info.get(key)?.[0];
}
