import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LivegraftError, type UserspaceDesired } from '@livegraft/protocol';
import type { TufSession } from '../delivery/tuf-client.ts';
import { bundleFrom } from './bundle.ts';

/**
 * Fetches the user-space level the server wants for a library build through
 * TUF: the signed target's custom data is the manifest, the target's bytes
 * (length and hash checked by TUF) the code object. Both are written into
 * `<dir>/<build-id>/<level>/` and the manifest's path is returned, ready for
 * the user-space manager to install. A level already there is reused.
 */
export async function fetchUserspaceLevel(
  session: Pick<TufSession, 'userspaceTarget' | 'download'>,
  desired: UserspaceDesired,
  dir: string,
): Promise<string> {
  if (desired.level === 0 || desired.target === undefined)
    throw new LivegraftError(
      'USERSPACE_NO_TARGET',
      `level ${desired.level} of ${desired.buildId} has nothing to fetch`,
    );
  const signed = await session.userspaceTarget(desired.target);
  if (signed === undefined)
    throw new LivegraftError('USERSPACE_TARGET_MISSING', `the repository has no signed target ${desired.target}`);
  const m = signed.manifest;
  if (m.library.buildId !== desired.buildId || m.level !== desired.level)
    throw new LivegraftError(
      'USERSPACE_TARGET_MISMATCH',
      `signed target ${desired.target} is level ${m.level} of ${m.library.buildId}, not level ${desired.level} of ${desired.buildId}`,
    );
  const levelDir = join(dir, m.library.buildId, String(m.level));
  const manifestPath = join(levelDir, `${m.code.file.replace(/\.o$/, '')}.json`);
  const objectPath = join(levelDir, m.code.file);
  try {
    const have = bundleFrom(JSON.parse(readFileSync(manifestPath, 'utf8')), readFileSync(objectPath));
    if (JSON.stringify(have.manifest) === JSON.stringify(m)) return manifestPath;
  } catch {
    // not there yet, or damaged: fetch it again
  }
  mkdirSync(levelDir, { recursive: true, mode: 0o700 });
  const tmp = join(levelDir, `.download.${process.pid}`);
  rmSync(tmp, { force: true });
  try {
    await session.download(signed.info, tmp);
    bundleFrom(m, readFileSync(tmp));
    renameSync(tmp, objectPath);
  } finally {
    rmSync(tmp, { force: true });
  }
  writeFileSync(`${manifestPath}.tmp`, `${JSON.stringify(m, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${manifestPath}.tmp`, manifestPath);
  return manifestPath;
}
