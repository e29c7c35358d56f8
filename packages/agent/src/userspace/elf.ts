import { LivegraftError } from '@livegraft/protocol';

/** Reads `len` bytes at `pos` of an ELF image (a file, or a process's memory); may return fewer. */
export type ReadAt = (pos: number, len: number) => Buffer;

const ELF_MAGIC = 0x464c457f;
const PT_NOTE = 4;
const NT_GNU_BUILD_ID = 3;

/**
 * The NT_GNU_BUILD_ID of an ELF64 image, as lower-case hex, or undefined when
 * it has none. `vaddrBase` is where the image's address 0 lies in `read`'s
 * space: 0 for a file read through its load segments' file offsets (the
 * notes of Debian's libraries lie in the first segment, where offset equals
 * address), the load base for a process's memory.
 */
export function readBuildId(read: ReadAt, vaddrBase = 0): string | undefined {
  const eh = read(vaddrBase, 64);
  if (eh.length < 64 || eh.readUInt32LE(0) !== ELF_MAGIC || eh[4] !== 2) return undefined;
  const phoff = Number(eh.readBigUInt64LE(32));
  const phentsize = eh.readUInt16LE(54);
  const phnum = eh.readUInt16LE(56);
  if (phentsize !== 56 || phnum === 0 || phnum > 64) return undefined;
  const ph = read(vaddrBase + phoff, phnum * 56);
  if (ph.length < phnum * 56) return undefined;
  for (let i = 0; i < phnum; i++) {
    const o = i * 56;
    if (ph.readUInt32LE(o) !== PT_NOTE) continue;
    const vaddr = Number(ph.readBigUInt64LE(o + 16));
    const size = Number(ph.readBigUInt64LE(o + 40));
    if (size > 65536) continue;
    const notes = read(vaddrBase + vaddr, size);
    let off = 0;
    while (off + 12 <= notes.length) {
      const namesz = notes.readUInt32LE(off);
      const descsz = notes.readUInt32LE(off + 4);
      const type = notes.readUInt32LE(off + 8);
      const desc = off + 12 + ((namesz + 3) & ~3);
      const next = desc + ((descsz + 3) & ~3);
      if (next > notes.length) break;
      if (type === NT_GNU_BUILD_ID && namesz === 4 && notes.toString('latin1', off + 12, off + 15) === 'GNU') {
        return notes.subarray(desc, desc + descsz).toString('hex');
      }
      off = next;
    }
  }
  return undefined;
}

/** The bytes of section `name` of an ELF64 relocatable object (the user-space code object's `.text`). */
export function sectionOfObject(obj: Buffer, name: string): Buffer {
  const bad = (why: string): never => {
    throw new LivegraftError('USERSPACE_BAD_CODE', `the code object is not usable: ${why}`);
  };
  if (obj.length < 64 || obj.readUInt32LE(0) !== ELF_MAGIC || obj[4] !== 2 || obj[5] !== 1) bad('not an ELF64 LE file');
  if (obj.readUInt16LE(16) !== 1) bad('not a relocatable object (ET_REL)');
  if (obj.readUInt16LE(18) !== 62) bad('not x86-64');
  const shoff = Number(obj.readBigUInt64LE(40));
  const shentsize = obj.readUInt16LE(58);
  const shnum = obj.readUInt16LE(60);
  const shstrndx = obj.readUInt16LE(62);
  if (shentsize !== 64 || shoff + shnum * 64 > obj.length || shstrndx >= shnum) bad('section headers out of bounds');
  const sh = (i: number) => {
    const o = shoff + i * 64;
    return {
      name: obj.readUInt32LE(o),
      type: obj.readUInt32LE(o + 4),
      offset: Number(obj.readBigUInt64LE(o + 24)),
      size: Number(obj.readBigUInt64LE(o + 32)),
    };
  };
  const strtab = sh(shstrndx);
  for (let i = 1; i < shnum; i++) {
    const s = sh(i);
    const at = strtab.offset + s.name;
    const end = obj.indexOf(0, at);
    if (end < 0 || obj.toString('latin1', at, end) !== name) continue;
    if (s.type !== 1) bad(`${name} is not PROGBITS`);
    if (s.offset + s.size > obj.length) bad(`${name} lies outside the file`);
    return obj.subarray(s.offset, s.offset + s.size);
  }
  return bad(`no ${name} section`);
}
