/** One entry of a newc cpio archive. */
export interface CpioEntry {
  name: string;
  /** Full st_mode, e.g. 0o100755 for an executable file, 0o040755 for a directory. */
  mode: number;
  data?: Uint8Array;
}

function header(ino: number, name: string, mode: number, size: number): Buffer {
  const hex = (n: number): string => n.toString(16).padStart(8, '0');
  const nameSize = Buffer.byteLength(name) + 1;
  const fields = [ino, mode, 0, 0, (mode & 0o170000) === 0o040000 ? 2 : 1, 0, size, 0, 0, 0, 0, nameSize, 0];
  return Buffer.from(`070701${fields.map(hex).join('')}`, 'ascii');
}

const pad4 = (n: number): Buffer => Buffer.alloc((4 - (n % 4)) % 4);

/** Builds an uncompressed newc ("070701") cpio archive, the format the kernel unpacks as initramfs. */
export function newcArchive(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let offset = 0;
  const push = (b: Buffer): void => {
    parts.push(b);
    offset += b.length;
  };
  const all = [...entries, { name: 'TRAILER!!!', mode: 0 }];
  all.forEach((e, i) => {
    const data = Buffer.from(e.data ?? new Uint8Array());
    push(header(e.name === 'TRAILER!!!' ? 0 : i + 1, e.name, e.mode, data.length));
    push(Buffer.from(`${e.name}\0`));
    push(pad4(offset));
    push(data);
    push(pad4(offset));
  });
  return Buffer.concat(parts);
}
