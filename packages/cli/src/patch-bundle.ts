import { readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { fixSpecValidator, LivegraftError, MAX_FIX_FILE_BYTES, type FixBundle } from '@livegraft/protocol';

export interface BarePatchOptions {
  /** The CVE ids the patch fixes (a bare patch does not say). */
  cve?: string[];
  /** The fix id (default: the first CVE). */
  id?: string;
  /** Where the fix entered each stable branch, e.g. ["6.1=6.1.177"]. */
  fixedIn?: string[];
}

/** The subject of a `git format-patch` mail, without its "[PATCH n/m]" tag. */
export function patchSubject(text: string): string | undefined {
  const m = /^Subject:\s*(.+(?:\n[ \t]+.+)*)/m.exec(text.slice(0, 16 * 1024));
  return m?.[1]
    ?.replace(/\n[ \t]+/g, ' ')
    .replace(/^\[PATCH[^\]]*\]\s*/i, '')
    .trim();
}

/**
 * An upstream patch on its own (`git format-patch` or `diff -u` output) as a
 * fix bundle: fix.json is made from the patch's subject and the options.
 * The server checks the patch itself, like any submitted fix.
 */
export async function bundleFromPatch(file: string, o: BarePatchOptions): Promise<FixBundle> {
  const cves = o.cve ?? [];
  if (cves.length === 0)
    throw new LivegraftError(
      'FIX_NO_CVE',
      `${file} is a bare patch, which names no CVE: pass --cve CVE-YYYY-NNNN (or submit a fix directory with fix.json)`,
    );
  const st = await stat(file);
  if (st.size > MAX_FIX_FILE_BYTES)
    throw new LivegraftError('FIX_INVALID', `${file} has ${st.size} bytes; a patch is at most ${MAX_FIX_FILE_BYTES}`);
  const bytes = await readFile(file);
  const text = bytes.toString('utf8');
  const name =
    basename(file)
      .replace(/[^A-Za-z0-9_.-]/g, '_')
      .replace(/^[^A-Za-z0-9_]+/, '') || 'upstream.patch';
  const fixedIn: Record<string, string> = {};
  for (const f of o.fixedIn ?? []) {
    const m = /^(\d+\.\d+)=(\d+\.\d+(?:\.\d+)?)$/.exec(f);
    if (m?.[1] === undefined || m[2] === undefined)
      throw new LivegraftError('USAGE', `--fixed-in ${f}: give BRANCH=VERSION, e.g. 6.1=6.1.177`);
    fixedIn[m[1]] = m[2];
  }
  const spec = fixSpecValidator.parse({
    id: o.id ?? cves[0],
    title: (patchSubject(text) ?? `${cves.join(', ')}: ${name}`).slice(0, 200),
    cves,
    patches: [name],
    ...(Object.keys(fixedIn).length > 0 ? { fixedIn } : {}),
  });
  return { spec, files: [{ name, content: bytes.toString('base64') }] };
}
