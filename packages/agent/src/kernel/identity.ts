import { mkdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { LivegraftError, kernelIdFromProcVersion, type KernelIdentity } from '@livegraft/protocol';
import { writeFileAtomic } from '../lib/fs-atomic.ts';

/** Where the agent reads the kernel from; tests point these at a fake tree. */
export interface KernelRoots {
  sysRoot: string;
  procRoot: string;
}

const MAX_NOTES_BYTES = 64 * 1024;
const NT_GNU_BUILD_ID = 3;

/**
 * Finds the GNU build-id in an ELF note stream such as /sys/kernel/notes:
 * records of (namesz, descsz, type) followed by name and desc, each padded
 * to 4 bytes. Returns lowercase hex, or undefined when there is none.
 */
export function parseBuildIdNotes(notes: Uint8Array): string | undefined {
  const buf = Buffer.from(notes.buffer, notes.byteOffset, notes.byteLength);
  const align4 = (n: number): number => (n + 3) & ~3;
  let off = 0;
  while (off + 12 <= buf.length) {
    const namesz = buf.readUInt32LE(off);
    const descsz = buf.readUInt32LE(off + 4);
    const type = buf.readUInt32LE(off + 8);
    const nameAt = off + 12;
    const descAt = nameAt + align4(namesz);
    const next = descAt + align4(descsz);
    if (namesz > buf.length || descsz > buf.length || next > buf.length) return undefined;
    const name = buf.toString('latin1', nameAt, nameAt + namesz);
    if (type === NT_GNU_BUILD_ID && name === 'GNU\0' && descsz >= 1 && descsz <= 64) {
      return buf.toString('hex', descAt, descAt + descsz);
    }
    off = next;
  }
  return undefined;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The running kernel as the server knows it. /proc is preferred over os.*
 * because it is what the fake tree controls and what the id is defined on.
 */
export function readKernelIdentity(roots: KernelRoots): KernelIdentity {
  const procVersionText = readText(join(roots.procRoot, 'version'));
  if (procVersionText === undefined) {
    throw new LivegraftError('KERNEL_IDENTITY_UNREADABLE', `cannot read ${join(roots.procRoot, 'version')}`);
  }
  const procVersion = (procVersionText.split('\n')[0] ?? '').slice(0, 1024);
  if (procVersion === '') {
    throw new LivegraftError('KERNEL_IDENTITY_UNREADABLE', `${join(roots.procRoot, 'version')} is empty`);
  }
  const release = readText(join(roots.procRoot, 'sys/kernel/osrelease'))?.trim() || os.release();
  const version = readText(join(roots.procRoot, 'sys/kernel/version'))?.trim() || os.version();
  const machine = readText(join(roots.procRoot, 'sys/kernel/arch'))?.trim() || os.machine();
  const identity: KernelIdentity = {
    id: kernelIdFromProcVersion(procVersion),
    release: release.slice(0, 128),
    version: version.slice(0, 256),
    machine: machine.slice(0, 32),
    procVersion,
  };
  try {
    const notes = readFileSync(join(roots.sysRoot, 'kernel/notes'));
    const buildId = parseBuildIdNotes(notes.subarray(0, MAX_NOTES_BYTES));
    if (buildId !== undefined) identity.buildId = buildId;
  } catch {
    // Not every kernel exposes notes (or we may lack permission); the build-id is informative only.
  }
  return identity;
}

/** <state>/kernel-identity.json: the identity as read first in a boot. */
export const IDENTITY_FILE = 'kernel-identity.json';
const MAX_IDENTITY_FILE_BYTES = 16 * 1024;

interface IdentityRecord {
  bootId: string;
  identity: KernelIdentity;
}

function readRecord(path: string): IdentityRecord | undefined {
  try {
    const text = readFileSync(path, 'utf8');
    if (text.length > MAX_IDENTITY_FILE_BYTES) return undefined;
    const doc = JSON.parse(text) as Partial<IdentityRecord>;
    const id = doc.identity;
    if (typeof doc.bootId !== 'string' || typeof id !== 'object' || id === null) return undefined;
    if (typeof id.id !== 'string' || !/^[0-9a-f]{64}$/.test(id.id) || typeof id.procVersion !== 'string') {
      return undefined;
    }
    if (kernelIdFromProcVersion(id.procVersion) !== id.id) return undefined;
    return { bootId: doc.bootId, identity: id };
  } catch {
    return undefined;
  }
}

/**
 * The kernel identity, fixed for the whole boot. A live patch can change
 * /proc/version (a fix to version_proc_show, say), and with it the id the
 * server knows this kernel by; the agent would then lose its cached levels
 * and its rollback. So the identity is read once per boot (keyed by the
 * kernel's boot_id) and kept in the state directory. In a later boot, a
 * kernel with the same GNU build-id (from /sys/kernel/notes, which no patch
 * to a text function changes) is the same binary with the same banner, so
 * the recorded identity is kept even if /proc/version reads differently.
 */
export function bootKernelIdentity(
  roots: KernelRoots,
  stateDir: string,
  bootId: string,
  warn: (message: string) => void,
): KernelIdentity {
  const path = join(stateDir, IDENTITY_FILE);
  const recorded = readRecord(path);
  if (recorded !== undefined && bootId !== '' && recorded.bootId === bootId) return recorded.identity;
  let identity = readKernelIdentity(roots);
  if (
    recorded !== undefined &&
    identity.buildId !== undefined &&
    recorded.identity.buildId === identity.buildId &&
    recorded.identity.id !== identity.id
  ) {
    warn(
      `/proc/version differs from the one recorded for kernel build-id ${identity.buildId} (a live patch may ` +
        'have changed it); keeping the recorded kernel identity',
    );
    identity = recorded.identity;
  }
  if (bootId === '') return identity;
  try {
    mkdirSync(stateDir, { recursive: true, mode: 0o700 });
    writeFileAtomic(path, `${JSON.stringify({ bootId, identity }, null, 2)}\n`, 0o600);
  } catch (err) {
    warn(`cannot record the kernel identity in ${path}: ${(err as Error).message}`);
  }
  return identity;
}
