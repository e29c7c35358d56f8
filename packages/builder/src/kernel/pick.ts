import { LivegraftError } from '@livegraft/protocol';
import type { ProcessRunner } from '../runner.ts';
import { listAvailableBuilds } from './archive.ts';

/** The build the real tests and the CVE demonstrations target. */
export const PREFERRED_RELEASE = '6.1.0-50-amd64';

/** 6.1.0-50-amd64 if the archive still offers it, else the oldest 6.1 build it offers; fails loudly if none. */
export async function pickTestRelease(run: ProcessRunner): Promise<string> {
  const builds = await listAvailableBuilds(run);
  if (builds.some((b) => b.release === PREFERRED_RELEASE)) return PREFERRED_RELEASE;
  const oldest = builds[0];
  if (oldest === undefined)
    throw new LivegraftError(
      'KERNEL_BUILD_UNKNOWN',
      'the Debian archive offers no linux-image-6.1.0-*-amd64-unsigned build (run apt-get update?)',
    );
  return oldest.release;
}
