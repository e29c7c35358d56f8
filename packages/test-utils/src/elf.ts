/**
 * A minimal ELF64 little-endian relocatable object (x86-64) holding only a
 * .modinfo section with these `key=value` entries: a section table of null,
 * .modinfo and .shstrtab. Enough for the real modinfo parsers, so tests
 * exercise actual ELF bytes rather than a stub.
 */
export function elfWithModinfo(entries: string[]): Buffer {
  const modinfo = Buffer.from(entries.map((e) => `${e}\0`).join(''), 'utf8');
  const shstrtab = Buffer.from('\0.modinfo\0.shstrtab\0', 'latin1');
  const modinfoOff = 64;
  const shstrOff = modinfoOff + modinfo.length;
  const shoff = Math.ceil((shstrOff + shstrtab.length) / 8) * 8;
  const out = Buffer.alloc(shoff + 3 * 64);
  out.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0);
  out.writeUInt16LE(1, 16); // ET_REL
  out.writeUInt16LE(62, 18); // EM_X86_64
  out.writeUInt32LE(1, 20);
  out.writeBigUInt64LE(BigInt(shoff), 40);
  out.writeUInt16LE(64, 52);
  out.writeUInt16LE(64, 58);
  out.writeUInt16LE(3, 60);
  out.writeUInt16LE(2, 62);
  modinfo.copy(out, modinfoOff);
  shstrtab.copy(out, shstrOff);
  const section = (i: number, name: number, type: number, offset: number, size: number): void => {
    const at = shoff + i * 64;
    out.writeUInt32LE(name, at);
    out.writeUInt32LE(type, at + 4);
    out.writeBigUInt64LE(BigInt(offset), at + 24);
    out.writeBigUInt64LE(BigInt(size), at + 32);
    out.writeBigUInt64LE(1n, at + 48);
  };
  section(1, 1, 1 /* PROGBITS */, modinfoOff, modinfo.length);
  section(2, 10, 3 /* STRTAB */, shstrOff, shstrtab.length);
  return out;
}
