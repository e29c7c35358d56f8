/**
 * Assembles a minimal ELF64 little-endian relocatable object with a .modinfo
 * section: header, section data, and a section table of null, .modinfo and
 * .shstrtab. Enough for the real parseModinfo, so verification is exercised
 * on actual ELF bytes rather than on a stub.
 */
export function buildModuleElf(modinfo: string[], extra: Buffer = Buffer.alloc(0)): Buffer {
  const info = Buffer.from(modinfo.map((e) => `${e}\0`).join(''), 'utf8');
  const shstrtab = Buffer.from('\0.modinfo\0.shstrtab\0.text\0', 'latin1');
  const EHDR = 64;
  const SHDR = 64;
  const infoOff = EHDR;
  const textOff = infoOff + info.length;
  const strOff = textOff + extra.length;
  const shoff = (strOff + shstrtab.length + 7) & ~7;
  const shnum = 4;
  const buf = Buffer.alloc(shoff + shnum * SHDR);
  buf.writeUInt32BE(0x7f454c46, 0);
  buf[4] = 2; // ELFCLASS64
  buf[5] = 1; // little-endian
  buf[6] = 1; // EV_CURRENT
  buf.writeUInt16LE(1, 16); // ET_REL
  buf.writeUInt16LE(62, 18); // EM_X86_64
  buf.writeUInt32LE(1, 20);
  buf.writeBigUInt64LE(BigInt(shoff), 40);
  buf.writeUInt16LE(EHDR, 52);
  buf.writeUInt16LE(SHDR, 58);
  buf.writeUInt16LE(shnum, 60);
  buf.writeUInt16LE(2, 62); // e_shstrndx
  info.copy(buf, infoOff);
  extra.copy(buf, textOff);
  shstrtab.copy(buf, strOff);
  const section = (i: number, name: number, type: number, flags: number, off: number, size: number): void => {
    const at = shoff + i * SHDR;
    buf.writeUInt32LE(name, at);
    buf.writeUInt32LE(type, at + 4);
    buf.writeBigUInt64LE(BigInt(flags), at + 8);
    buf.writeBigUInt64LE(BigInt(off), at + 24);
    buf.writeBigUInt64LE(BigInt(size), at + 32);
    buf.writeBigUInt64LE(1n, at + 48);
  };
  section(1, 1, 1 /* PROGBITS */, 2 /* ALLOC */, infoOff, info.length);
  section(2, 10, 3 /* STRTAB */, 0, strOff, shstrtab.length);
  section(3, 20, 1, 6 /* ALLOC|EXEC */, textOff, extra.length);
  return buf;
}

/** An ELF note record (namesz, descsz, type, name, desc; 4-byte aligned) as in /sys/kernel/notes. */
export function elfNote(name: string, type: number, desc: Buffer): Buffer {
  const nameBytes = Buffer.from(`${name}\0`, 'latin1');
  const pad = (n: number): number => (n + 3) & ~3;
  const out = Buffer.alloc(12 + pad(nameBytes.length) + pad(desc.length));
  out.writeUInt32LE(nameBytes.length, 0);
  out.writeUInt32LE(desc.length, 4);
  out.writeUInt32LE(type, 8);
  nameBytes.copy(out, 12);
  desc.copy(out, 12 + pad(nameBytes.length));
  return out;
}
