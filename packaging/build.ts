// npm run package: the agent's Debian package and the server tarball, into out/.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildAgentDeb, REPO, version } from './agent-deb.ts';
import { buildServerTarball } from './server-tarball.ts';
import { cliFiles } from './cli-files.ts';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

const outDir = join(REPO, 'out');
mkdirSync(outDir, { recursive: true });
const deb = await buildAgentDeb(outDir);
const tarball = await buildServerTarball(outDir, deb);
for (const f of [deb, tarball]) console.log(`${f} (${statSync(f).size} bytes)`);
// Man pages and completion for both programs, laid out like /usr/share.
for (const f of await cliFiles(version())) {
  const p = join(outDir, 'cli', f.path);
  await mkdir(dirname(p), { recursive: true });
  await writeFile(p, f.content);
}
console.log(`${join(outDir, 'cli')} (man pages, bash and zsh completion)`);
