import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import {
  LivegraftError,
  MAX_MODULE_BYTES,
  modinfoValue,
  moduleNameFor,
  parseModinfo,
  type KernelIdentity,
  type PatchManifest,
} from '@livegraft/protocol';

/**
 * Every check the agent makes before a module may reach the kernel. Each
 * failure is terminal (retrying cannot fix it) and has a stable code.
 * The kernel would catch some of these itself, but only after running the
 * module's init code; a module without livepatch=Y would run as plain code.
 */
export function verifyModule(manifest: PatchManifest, bytes: Uint8Array, kernel: KernelIdentity): void {
  verifyManifestTarget(manifest, kernel);
  verifyModuleBytes(manifest, bytes, kernel);
}

/** The checks that need no bytes: run before downloading anything. */
export function verifyManifestTarget(manifest: PatchManifest, kernel: KernelIdentity): void {
  if (manifest.kernel.id !== kernel.id) {
    throw new LivegraftError(
      'KERNEL_MISMATCH',
      `patch ${manifest.name} is for kernel ${manifest.kernel.release} (id ${manifest.kernel.id.slice(0, 12)}), ` +
        `but this host runs ${kernel.release} (id ${kernel.id.slice(0, 12)})`,
      { details: { manifestKernelId: manifest.kernel.id, runningKernelId: kernel.id } },
    );
  }
  const expectedName = moduleNameFor(kernel.id, manifest.level);
  if (manifest.name !== expectedName || manifest.module.file !== `${expectedName}.ko`) {
    throw new LivegraftError(
      'MODULE_NAME_MISMATCH',
      `level ${manifest.level} for this kernel must be named ${expectedName} (file ${expectedName}.ko), ` +
        `the manifest says ${manifest.name} (file ${manifest.module.file})`,
    );
  }
}

function verifyModuleBytes(manifest: PatchManifest, bytes: Uint8Array, kernel: KernelIdentity): void {
  if (bytes.byteLength !== manifest.module.size || bytes.byteLength > MAX_MODULE_BYTES) {
    throw new LivegraftError(
      'MODULE_HASH_MISMATCH',
      `${manifest.module.file} is ${bytes.byteLength} bytes, the manifest says ${manifest.module.size}`,
    );
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (sha256 !== manifest.module.sha256) {
    throw new LivegraftError(
      'MODULE_HASH_MISMATCH',
      `${manifest.module.file} has sha256 ${sha256}, the manifest says ${manifest.module.sha256}`,
    );
  }
  const info = parseModinfo(bytes);
  if (modinfoValue(info, 'livepatch') !== 'Y') {
    throw new LivegraftError(
      'MODULE_NOT_LIVEPATCH',
      `${manifest.module.file} lacks modinfo livepatch=Y: it is not a livepatch module and would run as ordinary kernel code`,
    );
  }
  const modName = modinfoValue(info, 'name');
  if (modName !== manifest.name) {
    throw new LivegraftError(
      'MODULE_NAME_MISMATCH',
      `${manifest.module.file} calls itself ${modName === undefined ? '(no modinfo name)' : `"${modName}"`}, the manifest says ${manifest.name}`,
    );
  }
  const vermagic = modinfoValue(info, 'vermagic') ?? '';
  if (!vermagic.startsWith(`${kernel.release} `)) {
    throw new LivegraftError(
      'VERMAGIC_MISMATCH',
      `${manifest.module.file} was built for "${vermagic.trim()}", this host runs ${kernel.release}`,
    );
  }
  if (vermagic.trim() !== manifest.kernel.vermagic.trim()) {
    throw new LivegraftError(
      'MANIFEST_MISMATCH',
      `${manifest.module.file} vermagic "${vermagic.trim()}" differs from the manifest's "${manifest.kernel.vermagic.trim()}"`,
    );
  }
  const kid = modinfoValue(info, 'livegraft_kernel_id');
  const level = modinfoValue(info, 'livegraft_level');
  if (kid !== manifest.kernel.id || level !== String(manifest.level)) {
    throw new LivegraftError(
      'MANIFEST_MISMATCH',
      `${manifest.module.file} modinfo says kernel ${kid ?? '(none)'} level ${level ?? '(none)'}, ` +
        `the manifest says kernel ${manifest.kernel.id} level ${manifest.level}`,
    );
  }
}

/** Reads a module file (bounded) and verifies it. */
export function verifyModuleFile(manifest: PatchManifest, path: string, kernel: KernelIdentity): Buffer {
  verifyManifestTarget(manifest, kernel);
  let size: number;
  try {
    size = statSync(path).size;
  } catch (err) {
    throw new LivegraftError('CACHE_MISSING', `cannot read module ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (size > MAX_MODULE_BYTES || size !== manifest.module.size) {
    throw new LivegraftError(
      'MODULE_HASH_MISMATCH',
      `${path} is ${size} bytes, the manifest says ${manifest.module.size}`,
    );
  }
  const bytes = readFileSync(path);
  verifyModule(manifest, bytes, kernel);
  return bytes;
}
