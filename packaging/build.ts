// npm run package: builds the Debian packages into out/.
import { mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { buildAgentDeb, REPO } from './agent-deb.ts';

const outDir = join(REPO, 'out');
mkdirSync(outDir, { recursive: true });
const deb = await buildAgentDeb(outDir);
console.log(`${deb} (${statSync(deb).size} bytes)`);
