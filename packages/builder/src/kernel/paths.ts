import os from 'node:os';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

/** The product's cache: $LIVEGRAFT_CACHE_DIR, else $XDG_CACHE_HOME/livegraft, else ~/.cache/livegraft. */
export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const own = env.LIVEGRAFT_CACHE_DIR;
  if (own !== undefined && own !== '') return path.resolve(own);
  const xdg = env.XDG_CACHE_HOME;
  if (xdg !== undefined && xdg !== '') return path.join(path.resolve(xdg), 'livegraft');
  return path.join(env.HOME ?? os.homedir(), '.cache', 'livegraft');
}

/** Where downloaded .deb files are kept (shared by every build). */
export function debsDir(cacheDir: string): string {
  return path.join(cacheDir, 'debs');
}

/** One kernel build's directory in the cache. */
export function buildDir(cacheDir: string, release: string): string {
  return path.join(cacheDir, 'kernels', release);
}

/** A Debian 6.1 amd64 kernel release, e.g. 6.1.0-50-amd64. */
export const RELEASE_PATTERN = /^(\d+\.\d+\.\d+-(\d+))-amd64$/;

/** The ABI name of a release ('6.1.0-50' for '6.1.0-50-amd64'). */
export function abiOf(release: string): string {
  const m = RELEASE_PATTERN.exec(release);
  if (m === null)
    throw new LivegraftError(
      'KERNEL_RELEASE_INVALID',
      `${JSON.stringify(release)} is not a Debian amd64 kernel release like 6.1.0-50-amd64`,
    );
  return m[1] ?? '';
}

/** The kernel series used in Debian package names ('6.1' for '6.1.0-50-amd64'). */
export function seriesOf(release: string): string {
  return release.split('.').slice(0, 2).join('.');
}
