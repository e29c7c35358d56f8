import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError, kernelIdFromProcVersion } from '@livegraft/protocol';
import { parseStringDefines } from './c-defines.ts';

/** Generated headers are a few hundred bytes; anything bigger is not what we think it is. */
const MAX_GENERATED_HEADER_BYTES = 64 * 1024;
/** A /proc/version line is well under this; the override file is read no further. */
const MAX_PROC_VERSION_BYTES = 4096;

/** The kernel build a patch is made for, as the agent will see it on the host. */
export interface TargetKernel {
  /** sha256 of `procVersion`. */
  id: string;
  /** `uname -r`. */
  release: string;
  /** The first line of /proc/version, without newline. */
  procVersion: string;
  /** Where procVersion came from. */
  source: 'headers' | 'file';
}

async function readBounded(file: string, max: number): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(file, 'r');
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(max);
    const { bytesRead } = await handle.read(buf, 0, max, 0);
    return buf.toString('utf8', 0, bytesRead);
  } finally {
    await handle.close();
  }
}

/**
 * Rebuilds the first line of /proc/version exactly as init/version.c prints
 * it, from include/generated/{utsrelease,compile,utsversion}.h. UTS_VERSION
 * lives in utsversion.h since 6.1 and in compile.h before; both are read.
 */
export async function procVersionFromHeaders(headersDir: string): Promise<{ line: string; release: string }> {
  const gen = path.join(headersDir, 'include', 'generated');
  const defines = new Map<string, string>();
  // Later files win: utsversion.h is the authority for UTS_VERSION where it exists.
  for (const name of ['compile.h', 'utsrelease.h', 'utsversion.h']) {
    const text = await readBounded(path.join(gen, name), MAX_GENERATED_HEADER_BYTES);
    if (text === undefined) continue;
    for (const [k, v] of parseStringDefines(text)) defines.set(k, v);
  }
  const need = ['UTS_RELEASE', 'LINUX_COMPILE_BY', 'LINUX_COMPILE_HOST', 'LINUX_COMPILER', 'UTS_VERSION'];
  const missing = need.filter((k) => !defines.has(k));
  if (missing.length > 0) {
    throw new LivegraftError(
      'PROC_VERSION_UNAVAILABLE',
      `cannot reconstruct /proc/version from ${gen}: ${missing.join(', ')} not defined in ` +
        `utsrelease.h, compile.h or utsversion.h. Pass --proc-version <file> holding the target's /proc/version.`,
      { details: { missing, dir: gen } },
    );
  }
  const d = (k: string): string => defines.get(k) ?? '';
  const line =
    `Linux version ${d('UTS_RELEASE')} (${d('LINUX_COMPILE_BY')}@${d('LINUX_COMPILE_HOST')}) ` +
    `(${d('LINUX_COMPILER')}) ${d('UTS_VERSION')}`;
  return { line, release: d('UTS_RELEASE') };
}

/** The release named in a /proc/version line, or undefined if it doesn't look like one. */
export function releaseFromProcVersion(line: string): string | undefined {
  return /^Linux version (\S+) /.exec(line)?.[1];
}

async function releaseFromHeaders(headersDir: string): Promise<string | undefined> {
  const text = await readBounded(
    path.join(headersDir, 'include', 'generated', 'utsrelease.h'),
    MAX_GENERATED_HEADER_BYTES,
  );
  return text === undefined ? undefined : parseStringDefines(text).get('UTS_RELEASE');
}

/**
 * The identity of the kernel the headers belong to. With `procVersionFile`
 * its first line is used instead of the reconstruction (for trees whose
 * generated headers lack the build strings), but its release must still
 * match the headers: a patch built against one tree and labelled with another
 * kernel's id would be offered to hosts it was never compiled for.
 */
export async function targetKernel(headersDir: string, procVersionFile?: string): Promise<TargetKernel> {
  if (procVersionFile === undefined) {
    const { line, release } = await procVersionFromHeaders(headersDir);
    return { id: kernelIdFromProcVersion(line), release, procVersion: line, source: 'headers' };
  }
  let text: string;
  try {
    text = (await readFile(procVersionFile)).subarray(0, MAX_PROC_VERSION_BYTES).toString('utf8');
  } catch (err) {
    throw new LivegraftError('PROC_VERSION_UNAVAILABLE', `cannot read ${procVersionFile}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const line = text.split('\n')[0] ?? '';
  const release = releaseFromProcVersion(line);
  if (release === undefined) {
    throw new LivegraftError(
      'PROC_VERSION_UNAVAILABLE',
      `${procVersionFile} does not start with a /proc/version line ("Linux version <release> ...")`,
    );
  }
  const headersRelease = await releaseFromHeaders(headersDir);
  if (headersRelease !== undefined && headersRelease !== release) {
    throw new LivegraftError(
      'KERNEL_MISMATCH',
      `${procVersionFile} is for kernel ${release} but the headers in ${headersDir} are for ${headersRelease}`,
      { details: { procVersionRelease: release, headersRelease } },
    );
  }
  return { id: kernelIdFromProcVersion(line), release, procVersion: line, source: 'file' };
}
