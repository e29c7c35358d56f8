import { createHash } from 'node:crypto';
import { Type, type Static } from 'typebox';

/**
 * Kernel identity.
 *
 * `id` is the SHA-256 (hex) of the first line of /proc/version, without its
 * trailing newline. That line holds the release, the builder, the compiler and
 * the build's version string and date, so two different builds of the same
 * `uname -r` get different ids. The builder reconstructs the same line from the
 * kernel headers (include/generated/{compile,utsrelease,utsversion}.h).
 */
export const KernelIdPattern = '^[0-9a-f]{64}$';
export const KernelId = Type.String({ pattern: KernelIdPattern, description: 'sha256 of /proc/version' });

export const KernelIdentity = Type.Object(
  {
    id: KernelId,
    release: Type.String({ minLength: 1, maxLength: 128, description: 'uname -r' }),
    version: Type.String({ maxLength: 256, description: 'uname -v' }),
    machine: Type.String({ maxLength: 32, description: 'uname -m' }),
    procVersion: Type.String({ maxLength: 1024 }),
    buildId: Type.Optional(Type.String({ pattern: '^[0-9a-f]{2,128}$', description: 'GNU build-id of vmlinux' })),
  },
  { additionalProperties: false },
);
export type KernelIdentity = Static<typeof KernelIdentity>;

export function kernelIdFromProcVersion(procVersion: string): string {
  const line = procVersion.split('\n')[0] ?? '';
  return createHash('sha256').update(line, 'utf8').digest('hex');
}

/** The livepatch module name for a level on a kernel: at most 55 chars, [a-z0-9_]. */
export function moduleNameFor(kernelId: string, level: number): string {
  return `livegraft_${kernelId.slice(0, 12)}_l${level}`;
}

/** The effective kernel version shown to scanners: base release plus patch level. */
export function effectiveRelease(release: string, level: number): string {
  return level > 0 ? `${release}+lg${level}` : release;
}
