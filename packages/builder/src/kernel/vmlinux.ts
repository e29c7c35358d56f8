import { open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { LivegraftError } from '@livegraft/protocol';
import { runChecked, type StepContext } from './run.ts';
import { TOOLS, requireTools, type Requirement } from './tools.ts';

/** A bzImage is a few MB; refuse to read anything far larger. */
export const MAX_VMLINUZ_BYTES = 64 * 1024 * 1024;
/** Debian's 6.1 vmlinux (stripped, with relocs) is ~66 MB. */
export const MAX_VMLINUX_BYTES = 512 * 1024 * 1024;
const DECOMPRESS_TIMEOUT_MS = 5 * 60_000;

export type Compression = 'xz' | 'gzip' | 'zstd' | 'lz4';

const MAGICS: readonly { kind: Compression; magic: Buffer }[] = [
  { kind: 'xz', magic: Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]) },
  { kind: 'gzip', magic: Buffer.from([0x1f, 0x8b, 0x08]) },
  { kind: 'zstd', magic: Buffer.from([0x28, 0xb5, 0x2f, 0xfd]) },
  // lz4 legacy frame, as the kernel's lz4 -l writes it
  { kind: 'lz4', magic: Buffer.from([0x02, 0x21, 0x4c, 0x18]) },
];

const DECOMPRESSORS: Record<Compression, { tool: Requirement; args: readonly string[] }> = {
  xz: { tool: TOOLS.xz, args: ['-dc', '--single-stream'] },
  gzip: { tool: TOOLS.gzip, args: ['-dc'] },
  zstd: { tool: TOOLS.zstd, args: ['-dc'] },
  lz4: { tool: TOOLS.lz4, args: ['-dc'] },
};

export interface Payload {
  kind: Compression;
  offset: number;
  /** Bytes of compressed data to feed the decompressor. */
  length: number;
}

function magicAt(buf: Buffer, offset: number): Compression | undefined {
  return MAGICS.find((m) => buf.subarray(offset, offset + m.magic.length).equals(m.magic))?.kind;
}

/**
 * Finds the compressed kernel inside a bzImage. Prefers the x86 boot header's
 * payload_offset/payload_length (boot protocol ≥ 2.08); otherwise scans for the
 * first known magic. All kernel formats but gzip end with a 4-byte size, not part
 * of the compressed stream.
 */
export function findPayload(image: Buffer): Payload {
  const isBzImage = image.length > 0x250 && image.readUInt32LE(0x202) === 0x53726448; // "HdrS"
  if (isBzImage && image.readUInt16LE(0x206) >= 0x0208) {
    const setupSects = image[0x1f1] === 0 ? 4 : (image[0x1f1] ?? 4);
    const offset = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
    const length = image.readUInt32LE(0x24c);
    const kind = magicAt(image, offset);
    if (kind !== undefined && offset + length <= image.length)
      return { kind, offset, length: kind === 'gzip' ? length : length - 4 };
  }
  let best: Payload | undefined;
  for (const m of MAGICS) {
    const at = image.indexOf(m.magic);
    if (at >= 0 && (best === undefined || at < best.offset))
      best = { kind: m.kind, offset: at, length: image.length - at };
  }
  if (best === undefined)
    throw new LivegraftError('VMLINUZ_UNRECOGNISED', 'no xz, gzip, zstd or lz4 payload found in the kernel image');
  return best;
}

/** Checks that `file` is a complete x86-64 ELF (its section header table lies within the file). */
export async function assertElf(file: string): Promise<void> {
  const h = await open(file, 'r');
  try {
    const head = Buffer.alloc(64);
    await h.read(head, 0, 64, 0);
    const size = (await h.stat()).size;
    const bad = (why: string): never => {
      throw new LivegraftError('VMLINUX_INVALID', `${file} is not a complete x86-64 ELF: ${why}`);
    };
    if (!head.subarray(0, 4).equals(Buffer.from([0x7f, 0x45, 0x4c, 0x46]))) bad('no ELF magic');
    if (head[4] !== 2 || head[5] !== 1) bad('not 64-bit little-endian');
    if (head.readUInt16LE(18) !== 62) bad('not x86-64');
    const shoff = Number(head.readBigUInt64LE(40));
    const shentsize = head.readUInt16LE(58);
    const shnum = head.readUInt16LE(60);
    if (shoff + shentsize * shnum > size)
      bad(`truncated (section headers end at ${shoff + shentsize * shnum}, file has ${size})`);
  } finally {
    await h.close();
  }
}

/** Decompresses the kernel inside `vmlinuz` into the ELF file `out` (written atomically). */
export async function extractVmlinux(ctx: StepContext, vmlinuz: string, out: string): Promise<Compression> {
  const st = await stat(vmlinuz);
  if (st.size > MAX_VMLINUZ_BYTES)
    throw new LivegraftError('VMLINUZ_UNRECOGNISED', `${vmlinuz} has ${st.size} bytes, more than a kernel image can`);
  const image = await readFile(vmlinuz);
  const payload = findPayload(image);
  const dec = DECOMPRESSORS[payload.kind];
  await requireTools([dec.tool]);
  const packed = `${out}.${payload.kind}.tmp`;
  const tmp = `${out}.tmp`;
  await writeFile(packed, image.subarray(payload.offset, payload.offset + payload.length));
  try {
    // head -c bounds the output; one byte over the limit marks it as too large.
    await runChecked(
      ctx,
      'VMLINUX_EXTRACT_FAILED',
      `decompressing the ${payload.kind} payload of ${vmlinuz}`,
      'sh',
      [
        '-c',
        `${dec.tool.name} ${dec.args.join(' ')} -- "$1" | head -c ${MAX_VMLINUX_BYTES + 1} > "$2"`,
        'sh',
        packed,
        tmp,
      ],
      { timeoutMs: DECOMPRESS_TIMEOUT_MS },
    );
    if ((await stat(tmp)).size > MAX_VMLINUX_BYTES)
      throw new LivegraftError(
        'VMLINUX_EXTRACT_FAILED',
        `the kernel in ${vmlinuz} decompresses to more than ${MAX_VMLINUX_BYTES} bytes`,
      );
    await assertElf(tmp);
    await rename(tmp, out);
    return payload.kind;
  } finally {
    await rm(packed, { force: true });
    await rm(tmp, { force: true });
  }
}
