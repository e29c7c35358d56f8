import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { isLivegraftError } from '@livegraft/protocol';
import { spawnRunner } from '../src/runner.ts';
import { assertElf, extractVmlinux, findPayload } from '../src/kernel/index.ts';
import { scratch } from './helpers.ts';

/** A minimal complete x86-64 ELF: a header, some body, a section header table at the end. */
function tinyElf(body = 4096): Buffer {
  const buf = Buffer.alloc(64 + body + 64 * 2);
  buf.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1], 0);
  buf.writeUInt16LE(2, 16); // ET_EXEC
  buf.writeUInt16LE(62, 18); // EM_X86_64
  buf.writeBigUInt64LE(BigInt(64 + body), 40); // e_shoff
  buf.writeUInt16LE(64, 58); // e_shentsize
  buf.writeUInt16LE(2, 60); // e_shnum
  for (let i = 0; i < body; i++) buf[64 + i] = i % 251;
  return buf;
}

/** A synthetic bzImage: boot header fields (setup_sects, HdrS, version, payload_offset/length) + payload. */
function bzImage(payload: Buffer, trailer: boolean): Buffer {
  const setupSects = 3;
  const payloadOffset = 100;
  const start = (setupSects + 1) * 512 + payloadOffset;
  const data = trailer ? Buffer.concat([payload, Buffer.from([1, 2, 3, 4])]) : payload;
  const image = Buffer.alloc(start + data.length + 300);
  image[0x1f1] = setupSects;
  image.writeUInt32LE(0x53726448, 0x202);
  image.writeUInt16LE(0x020f, 0x206);
  image.writeUInt32LE(payloadOffset, 0x248);
  image.writeUInt32LE(data.length, 0x24c);
  data.copy(image, start);
  return image;
}

describe('vmlinux from vmlinuz', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  before(async () => {
    tmp = await scratch('lg-vmlinux-');
  });
  after(async () => {
    await tmp.cleanup();
  });
  const ctx = { run: spawnRunner, log: () => undefined };

  it('finds a gzip payload through the boot header', () => {
    const gz = gzipSync(tinyElf());
    const p = findPayload(bzImage(gz, false));
    assert.deepEqual(p, { kind: 'gzip', offset: 4 * 512 + 100, length: gz.length });
  });

  it('drops the 4-byte size trailer of other formats', () => {
    const fakeZstd = Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 9, 9, 9]);
    assert.deepEqual(findPayload(bzImage(fakeZstd, true)), { kind: 'zstd', offset: 2148, length: fakeZstd.length });
  });

  it('falls back to scanning for a magic without a boot header', () => {
    const img = Buffer.concat([Buffer.alloc(777, 0x90), Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 1, 2])]);
    assert.deepEqual(findPayload(img), { kind: 'xz', offset: 777, length: 8 });
    assert.throws(
      () => findPayload(Buffer.alloc(2000)),
      (err: unknown) => isLivegraftError(err) && err.code === 'VMLINUZ_UNRECOGNISED',
    );
  });

  it('decompresses gzip and xz payloads with Debian tools into a complete ELF', async () => {
    const elf = tinyElf(100_000);
    const gzImage = path.join(tmp.dir, 'vmlinuz-gz');
    await writeFile(gzImage, bzImage(gzipSync(elf), false));
    assert.equal(await extractVmlinux(ctx, gzImage, path.join(tmp.dir, 'vmlinux-gz')), 'gzip');
    assert.deepEqual(await readFile(path.join(tmp.dir, 'vmlinux-gz')), elf);

    const raw = path.join(tmp.dir, 'elf');
    await writeFile(raw, elf);
    const xz = await spawnRunner('xz', ['-kf', '--check=crc32', raw], { timeoutMs: 30_000, maxOutputBytes: 4096 });
    assert.equal(xz.code, 0, xz.stderr);
    const xzImage = path.join(tmp.dir, 'vmlinuz-xz');
    await writeFile(xzImage, bzImage(await readFile(`${raw}.xz`), true));
    assert.equal(await extractVmlinux(ctx, xzImage, path.join(tmp.dir, 'vmlinux-xz')), 'xz');
    assert.deepEqual(await readFile(path.join(tmp.dir, 'vmlinux-xz')), elf);
  });

  it('rejects a truncated ELF', async () => {
    const cut = path.join(tmp.dir, 'cut');
    await writeFile(cut, tinyElf().subarray(0, 1000));
    await assert.rejects(assertElf(cut), (err: unknown) => isLivegraftError(err) && err.code === 'VMLINUX_INVALID');
  });
});
