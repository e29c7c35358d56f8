import { createHash } from 'node:crypto';
import { moduleNameFor, type PatchManifest } from '@livegraft/protocol';
import { buildModuleElf } from './elf.ts';

export interface TestPatch {
  manifest: PatchManifest;
  bytes: Buffer;
}

export interface PatchTweaks {
  /** Replace or drop (undefined) modinfo keys. */
  modinfo?: Record<string, string | undefined>;
  /** Applied to the manifest after the bytes were measured. */
  manifest?: (m: PatchManifest) => void;
  /** Applied to the bytes after the manifest was computed (corruption). */
  bytes?: (b: Buffer) => Buffer;
  /** Computes the manifest from these bytes instead (e.g. a truncated file the manifest agrees with). */
  describeBytes?: (b: Buffer) => Buffer;
}

export function vermagicFor(release: string): string {
  return `${release} SMP preempt mod_unload modversions `;
}

/** A module + manifest pair exactly as the builder would publish it for (kernel, level). */
export function makePatch(kernel: { id: string; release: string }, level: number, tweaks: PatchTweaks = {}): TestPatch {
  const name = moduleNameFor(kernel.id, level);
  const info: Record<string, string | undefined> = {
    license: 'GPL',
    livepatch: 'Y',
    livegraft_level: String(level),
    livegraft_kernel_id: kernel.id,
    name,
    vermagic: vermagicFor(kernel.release),
    ...tweaks.modinfo,
  };
  const entries = Object.entries(info)
    .filter((e): e is [string, string] => e[1] !== undefined)
    .map(([k, v]) => `${k}=${v}`);
  let bytes = buildModuleElf(entries, Buffer.from(`code for level ${level}`));
  if (tweaks.describeBytes) bytes = tweaks.describeBytes(bytes);
  const cve = `CVE-2025-${String(1000 + level).padStart(4, '0')}`;
  const manifest: PatchManifest = {
    schema: 1,
    name,
    level,
    replace: true,
    kernel: { id: kernel.id, release: kernel.release, vermagic: vermagicFor(kernel.release) },
    fixes: [
      {
        id: `fix-${level}`,
        title: `Fix number ${level}`,
        cves: [cve],
        functions: [{ name: 'cmdline_proc_show', object: 'vmlinux' }],
      },
    ],
    cves: [cve],
    module: { file: `${name}.ko`, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length },
    builtAt: '2025-01-01T00:00:00.000Z',
    builder: 'test',
  };
  tweaks.manifest?.(manifest);
  if (tweaks.bytes) bytes = tweaks.bytes(bytes);
  return { manifest, bytes };
}
