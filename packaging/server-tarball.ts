/**
 * livegraft-server_<version>_linux-x64.tar.gz, unpacked into /opt:
 *
 *   livegraft-server/bin/livegraft-server       launcher (sh)
 *   livegraft-server/lib/node                   Node.js 24 (node:sqlite), from the node package on npm
 *   livegraft-server/lib/livegraft-server.mjs   the server bundled by esbuild
 *   livegraft-server/share/dashboard/           the dashboard, served at /
 *   livegraft-server/share/kernel-cves.json.gz  the CVE dataset
 *   livegraft-server/share/livegraft-agent_<version>_amd64.deb   served to hosts by /install.sh
 *   livegraft-server/share/livegraft-server.service, server.env   systemd unit and its settings
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { build, type Plugin } from 'esbuild';
import { PACKAGING, REPO, version } from './agent-deb.ts';
import { SOURCE_DATE_EPOCH } from './deb.ts';

export const SERVER_DIR = 'livegraft-server';

/** The server's files found next to its source tree are found in share/ once bundled. */
const relocate: Plugin = {
  name: 'livegraft-relocate',
  setup(b) {
    b.onLoad({ filter: /(dashboard[/\\]index|dataset)\.ts$/ }, (args) => {
      const src = readFileSync(args.path, 'utf8')
        .replace(
          "new URL('../../../dashboard/dist/', import.meta.url)",
          "new URL('../share/dashboard/', import.meta.url)",
        )
        .replace(
          "new URL('../data/kernel-cves.json.gz', import.meta.url)",
          "new URL('../share/kernel-cves.json.gz', import.meta.url)",
        );
      return { contents: src, loader: 'ts' };
    });
  },
};

async function bundleServer(out: string): Promise<void> {
  const r = await build({
    entryPoints: [join(REPO, 'packages/server/src/bin.ts')],
    bundle: true,
    platform: 'node',
    target: 'node24',
    format: 'esm',
    minify: true,
    keepNames: true,
    legalComments: 'none',
    banner: {
      js: "import { createRequire as __livegraftCreateRequire } from 'node:module'; const require = __livegraftCreateRequire(import.meta.url);",
    },
    plugins: [relocate],
    outfile: out,
    logLevel: 'silent',
  });
  if (r.errors.length > 0) throw new Error(`esbuild: ${JSON.stringify(r.errors)}`);
  const text = readFileSync(out, 'utf8');
  for (const p of ['../share/dashboard/', '../share/kernel-cves.json.gz']) {
    if (!text.includes(p)) throw new Error(`the bundled server does not look for ${p}: relocation failed`);
  }
}

const LAUNCHER = `#!/bin/sh
# livegraft-server from its own directory, on the Node.js shipped beside it.
here=$(dirname "$(readlink -f "$0")")/..
# The agent package beside it is what GET /install.sh installs on hosts.
if [ -z "\${LIVEGRAFT_AGENT_PACKAGE:-}" ]; then
  for f in "$here"/share/livegraft-agent_*.deb; do
    [ -f "$f" ] && LIVEGRAFT_AGENT_PACKAGE=$f && export LIVEGRAFT_AGENT_PACKAGE
  done
fi
exec "$here/lib/node" "$here/lib/livegraft-server.mjs" "$@"
`;

/** Builds the tarball from `agentDeb` and the built dashboard; returns its path. */
export async function buildServerTarball(outDir: string, agentDeb: string): Promise<string> {
  const dashboard = join(REPO, 'packages/dashboard/dist');
  if (!existsSync(join(dashboard, 'index.html'))) {
    throw new Error(`${dashboard} has no index.html: run npm run build first`);
  }
  const stage = join(outDir, 'server.stage');
  const top = join(stage, SERVER_DIR);
  rmSync(stage, { recursive: true, force: true });
  for (const d of ['bin', 'lib', 'share']) mkdirSync(join(top, d), { recursive: true });
  writeFileSync(join(top, 'bin/livegraft-server'), LAUNCHER);
  chmodSync(join(top, 'bin/livegraft-server'), 0o755);
  copyFileSync(join(REPO, 'node_modules/node/bin/node'), join(top, 'lib/node'));
  chmodSync(join(top, 'lib/node'), 0o755);
  await bundleServer(join(top, 'lib/livegraft-server.mjs'));
  chmodSync(join(top, 'lib/livegraft-server.mjs'), 0o644);
  cpSync(dashboard, join(top, 'share/dashboard'), { recursive: true });
  copyFileSync(join(REPO, 'packages/inspector/data/kernel-cves.json.gz'), join(top, 'share/kernel-cves.json.gz'));
  copyFileSync(agentDeb, join(top, 'share', basename(agentDeb)));
  for (const f of ['livegraft-server.service', 'server.env']) {
    copyFileSync(join(PACKAGING, 'server', f), join(top, 'share', f));
  }
  const tarball = join(outDir, `livegraft-server_${version()}_linux-x64.tar.gz`);
  execFileSync(
    'tar',
    [
      '--sort=name',
      `--mtime=@${SOURCE_DATE_EPOCH}`,
      '--owner=0',
      '--group=0',
      '--numeric-owner',
      '-C',
      stage,
      '-czf',
      tarball,
      SERVER_DIR,
    ],
    { stdio: 'pipe' },
  );
  rmSync(stage, { recursive: true, force: true });
  return tarball;
}
