// npm run package: the agent's Debian package and the server tarball, into out/.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildAgentDeb, REPO } from './agent-deb.ts';
import { buildServerTarball } from './server-tarball.ts';

const outDir = join(REPO, 'out');
mkdirSync(outDir, { recursive: true });
const deb = await buildAgentDeb(outDir);
const tarball = await buildServerTarball(outDir, deb);
for (const f of [deb, tarball]) console.log(`${f} (${statSync(f).size} bytes)`);
