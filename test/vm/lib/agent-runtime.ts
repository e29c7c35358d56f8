/**
 * The agent in the guest exactly as hosts get it: the livegraft-agent Debian
 * package installed with apt in a minimal Debian 12 root, running on that
 * root's own nodejs (18), not on the Node 24 that runs the tests.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildAgentDeb } from '../../../packaging/agent-deb.ts';
import { APT_TIMEOUT_MS, chrootOk, freshDebianRoot, runOk } from '../../../packaging/debian-root.ts';
import { defaultCacheDir } from '../../../packages/builder/src/kernel/paths.ts';

function filesUnder(root: string, dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const rel = join(dir, e.name);
    if (e.isDirectory()) return filesUnder(root, rel);
    return e.isFile() ? [rel] : [];
  });
}

/** A Debian 12 root with the package installed (kept per package content). */
async function installedRoot(workDir: string): Promise<string> {
  const deb = await buildAgentDeb(workDir);
  const sum = createHash('sha256').update(readFileSync(deb)).digest('hex').slice(0, 16);
  const base = join(defaultCacheDir(), 'debian');
  mkdirSync(base, { recursive: true });
  const root = join(base, `agent-root-${sum}`);
  if (existsSync(join(root, 'usr/bin/livegraft-agent'))) return root;
  const tmp = `${root}.${process.pid}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  await freshDebianRoot(tmp);
  await runOk('cp', [deb, join(tmp, 'tmp/agent.deb')]);
  await chrootOk(tmp, ['apt-get', 'install', '-y', '-q', '--no-install-recommends', '/tmp/agent.deb'], APT_TIMEOUT_MS);
  rmSync(root, { recursive: true, force: true });
  renameSync(tmp, root);
  // Roots of older builds of the package go.
  for (const e of readdirSync(base)) {
    if (e.startsWith('agent-root-') && join(base, e) !== root) rmSync(join(base, e), { recursive: true, force: true });
  }
  return root;
}

/**
 * Guest path -> host path for the packaged agent, Debian's node, the shared
 * libraries node links, and the JavaScript Debian's node keeps outside its
 * binary (/usr/share/nodejs).
 */
export async function packagedAgentFiles(workDir: string): Promise<Record<string, string>> {
  const root = await installedRoot(workDir);
  const files: Record<string, string> = {
    'usr/bin/livegraft-agent': join(root, 'usr/bin/livegraft-agent'),
    'usr/bin/node': join(root, 'usr/bin/node'),
  };
  const ldd = await chrootOk(root, ['ldd', '/usr/bin/node']);
  for (const line of ldd.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m?.[1]) files[relative('/', m[1])] = join(root, m[1]);
  }
  for (const f of filesUnder(root, 'usr/share/nodejs')) files[f] = join(root, f);
  return files;
}
