import { LivegraftError, MAX_MODULE_BYTES, modinfoValue, parseModinfo } from '@livegraft/protocol';

export interface ModuleFacts {
  vermagic: string;
}

/**
 * Reads back what kbuild produced and refuses anything that would not load
 * as the patch we meant: it must be a livepatch, carry our name and level,
 * and be built for the release we labelled it with.
 */
export function checkBuiltModule(
  ko: Uint8Array,
  expect: { name: string; level: number; release: string; kernelId: string },
): ModuleFacts {
  if (ko.byteLength > MAX_MODULE_BYTES) {
    throw new LivegraftError(
      'BUILD_FAILED',
      `built module is ${ko.byteLength} bytes, over the ${MAX_MODULE_BYTES}-byte limit servers and agents accept`,
    );
  }
  const info = parseModinfo(ko);
  const bad = (why: string): LivegraftError => new LivegraftError('BUILD_FAILED', `built module is unusable: ${why}`);
  if (modinfoValue(info, 'livepatch') !== 'Y') throw bad('modinfo has no livepatch=Y');
  const name = modinfoValue(info, 'name');
  if (name !== undefined && name !== expect.name) throw bad(`modinfo name is ${name}, expected ${expect.name}`);
  if (modinfoValue(info, 'livegraft_level') !== String(expect.level)) throw bad('modinfo livegraft_level is wrong');
  if (modinfoValue(info, 'livegraft_kernel_id') !== expect.kernelId) throw bad('modinfo livegraft_kernel_id is wrong');
  const vermagic = modinfoValue(info, 'vermagic');
  if (vermagic === undefined || vermagic.trim() === '') throw bad('modinfo has no vermagic');
  const vermagicRelease = vermagic.trim().split(/\s+/)[0];
  if (vermagicRelease !== expect.release) {
    throw new LivegraftError(
      'KERNEL_MISMATCH',
      `the headers built a module for ${vermagicRelease ?? '?'} but the kernel identity says ${expect.release}`,
      { details: { vermagic, release: expect.release } },
    );
  }
  return { vermagic: vermagic.trim() };
}
