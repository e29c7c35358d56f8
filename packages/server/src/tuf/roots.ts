import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Metadata, Root } from '@tufjs/models';
import { LivegraftError } from '@livegraft/protocol';
import { parseRoot } from './metadata.ts';

/** tuf-js refuses larger roots (its rootMaxLength); refusing here names the file. */
export const MAX_ROOT_BYTES = 512_000;
const ROOT_FILE = /^([1-9][0-9]{0,8})\.root\.json$/;

export interface RootFile {
  path: string;
  json: string;
  md: Metadata<Root>;
}

function invalid(what: string, why: string, cause?: unknown): LivegraftError {
  return new LivegraftError('TUF_ROOT_INVALID', `${what}: ${why}`, { cause });
}

/** Checks what our clients and server rely on, and that the root is signed by a threshold of its own root keys. */
export function verifySelfSigned(md: Metadata<Root>, what: string): void {
  if (!md.signed.consistentSnapshot) throw invalid(what, 'consistent_snapshot must be true');
  for (const role of ['root', 'targets', 'snapshot', 'timestamp']) {
    const r = md.signed.roles[role];
    if (r === undefined || r.keyIDs.length === 0) throw invalid(what, `role ${role} has no keys`);
    if (r.keyIDs.length < r.threshold) throw invalid(what, `role ${role} has fewer keys than its threshold`);
  }
  try {
    md.verifyDelegate('root', md);
  } catch (err) {
    throw invalid(what, `not signed by a threshold of its own root keys (${(err as Error).message})`, err);
  }
}

/** TUF root rotation: version N+1, signed by a threshold of the old root's root keys and of its own. */
export function verifyNextRoot(trusted: Metadata<Root>, next: Metadata<Root>, what: string): void {
  if (next.signed.version !== trusted.signed.version + 1) {
    throw invalid(what, `version ${next.signed.version} does not follow the trusted root ${trusted.signed.version}`);
  }
  try {
    trusted.verifyDelegate('root', next);
  } catch (err) {
    throw invalid(
      what,
      `not signed by a threshold of root version ${trusted.signed.version}'s root keys (${(err as Error).message}); sign it with the old root key(s) too (livegraft keys sign-root)`,
      err,
    );
  }
  verifySelfSigned(next, what);
}

export async function readRootFile(path: string): Promise<RootFile> {
  const st = await stat(path);
  if (st.size > MAX_ROOT_BYTES) throw invalid(path, `${st.size} bytes, more than ${MAX_ROOT_BYTES}`);
  const json = await readFile(path, 'utf8');
  let md: Metadata<Root>;
  try {
    md = parseRoot(json);
  } catch (err) {
    throw invalid(path, `not TUF root metadata (${(err as Error).message})`, err);
  }
  const m = ROOT_FILE.exec(path.split('/').pop() ?? '');
  if (m !== null && Number(m[1]) !== md.signed.version) {
    throw invalid(path, `the file name says version ${m[1]}, the metadata says ${md.signed.version}`);
  }
  return { path, json, md };
}

/** Every `N.root.json` in dir (none if dir does not exist), plus extra files, in version order. */
export async function readRootFiles(dir: string, extra: readonly string[]): Promise<RootFile[]> {
  let names: string[] = [];
  try {
    names = (await readdir(dir)).filter((n) => ROOT_FILE.test(n));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const files = await Promise.all([...names.map((n) => join(dir, n)), ...extra].map(readRootFile));
  files.sort((a, b) => a.md.signed.version - b.md.signed.version);
  return files;
}
