import { stat } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

/** Where a kernel release's build tree is looked for, in order. Injectable for tests. */
export interface HeadersRoots {
  /** `/lib/modules`: `<release>/build` is the usual symlink to the headers. */
  modulesRoot: string;
  /** `/usr/src`: Debian and Ubuntu install `linux-headers-<release>` here. */
  srcRoot: string;
}

export const DEFAULT_HEADERS_ROOTS: HeadersRoots = { modulesRoot: '/lib/modules', srcRoot: '/usr/src' };

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

async function isFile(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isFile();
  } catch {
    return false;
  }
}

/** Why `dir` is not a usable kbuild tree, or undefined when it is. */
async function whyNotHeaders(dir: string): Promise<string | undefined> {
  if (!(await isDir(dir))) return 'does not exist';
  if (!(await isFile(path.join(dir, 'Makefile')))) return 'has no Makefile';
  if (!(await isDir(path.join(dir, 'include', 'generated'))))
    return 'has no include/generated/ (not a configured tree)';
  return undefined;
}

/**
 * Turns `--kernel` into a headers directory. A value naming an existing
 * directory, or containing a slash, is a path; anything else is a kernel
 * release (`uname -r`) looked up in the usual places.
 */
export async function resolveHeaders(kernel: string, roots: HeadersRoots = DEFAULT_HEADERS_ROOTS): Promise<string> {
  const asPath = kernel.includes('/') || (await isDir(kernel));
  if (asPath) {
    const dir = path.resolve(kernel);
    const why = await whyNotHeaders(dir);
    if (why === undefined) return dir;
    throw new LivegraftError(
      'HEADERS_NOT_FOUND',
      `${dir} is not a kernel headers tree: it ${why}. Point --kernel at a configured kbuild tree ` +
        `(it holds Makefile and include/generated/) or give a kernel release such as $(uname -r).`,
      { details: { tried: [dir] } },
    );
  }
  if (!/^[A-Za-z0-9][A-Za-z0-9._+~-]{0,127}$/.test(kernel)) {
    throw new LivegraftError('HEADERS_NOT_FOUND', `"${kernel}" is neither a directory nor a kernel release`);
  }
  const candidates = [
    path.join(roots.modulesRoot, kernel, 'build'),
    path.join(roots.srcRoot, `linux-headers-${kernel}`),
  ];
  const tried: string[] = [];
  for (const dir of candidates) {
    const why = await whyNotHeaders(dir);
    if (why === undefined) return dir;
    tried.push(`${dir} (${why})`);
  }
  throw new LivegraftError(
    'HEADERS_NOT_FOUND',
    `no kernel headers for release ${kernel}; tried ${tried.join(', ')}. ` +
      `On Debian and Ubuntu they come from the package linux-headers-${kernel} (apt-get install linux-headers-${kernel}).`,
    { details: { release: kernel, tried: candidates } },
  );
}
