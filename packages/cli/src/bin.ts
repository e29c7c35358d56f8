#!/usr/bin/env node
import { Command, Option } from 'commander';
import { API_PREFIX, isLivegraftError, type PatchRecord } from '@livegraft/protocol';
import { ApiClient } from './api.ts';
import { tokenFrom } from './connection.ts';
import { publishedText, publishPatch } from './publish.ts';
import { forward } from './forward.ts';
import { inspectCommands } from './inspect.ts';
import { showControlCharacters, table } from './format.ts';
import { keysCommand } from './keys-command.ts';
import { mirrorCommand } from './mirror-command.ts';
import { exportCommand } from './export-command.ts';
import { reportCommands } from './report.ts';
import { tripwireCommand } from './tripwire.ts';
import { vexCommand } from './vex.ts';
import { fleetCommands, hostsCommand } from './fleet.ts';
import { userspaceCommand } from './userspace.ts';
import { coverageCommand, fixesCommand, jobsCommand } from './pipeline.ts';

interface AdminOpts {
  server: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

const DEFAULT_SERVER = 'http://127.0.0.1:8720';

function client(o: AdminOpts): ApiClient {
  return new ApiClient({ server: o.server, token: tokenFrom(o) });
}

function adminCommand(name: string, description: string): Command {
  return new Command(name)
    .description(description)
    .addOption(new Option('--server <url>', 'patch server URL').env('LIVEGRAFT_SERVER').default(DEFAULT_SERVER))
    .option('--token <token>', 'admin API token (or LIVEGRAFT_TOKEN)')
    .option('--token-file <path>', 'file holding the admin API token')
    .option('--json', 'print JSON');
}

const program = new Command('livegraft')
  .description('Livegraft admin CLI: build, publish and watch live kernel patches')
  .version('0.1.0')
  // Lets command groups (feeds, hosts, tokens) and their subcommands each take --server/--token.
  .enablePositionalOptions();

program
  .command('build')
  .description('compile fixes into one cumulative livepatch module (see livegraft build --help)')
  .helpOption(false)
  .allowUnknownOption(true)
  .argument('[args...]')
  .action(async (args: string[]) => {
    process.exitCode = await forward('build', args);
  });

program
  .command('worker')
  .description(
    'claim build jobs: build each level for its kernel build and validate it in a VM (see livegraft worker --help)',
  )
  .helpOption(false)
  .allowUnknownOption(true)
  .argument('[args...]')
  .action(async (args: string[]) => {
    process.exitCode = await forward('worker', args);
  });

program
  .command('server')
  .description('run the patch server (see livegraft server --help)')
  .helpOption(false)
  .allowUnknownOption(true)
  .argument('[args...]')
  .action(async (args: string[]) => {
    process.exitCode = await forward('server', args);
  });

program.addCommand(
  adminCommand('publish', 'upload built patches (manifest .json beside its .ko) and publish them')
    .argument('<manifests...>')
    .option('--no-publish', 'upload only; publish later')
    .action(async (manifests: string[], o: AdminOpts & { publish: boolean }) => {
      const api = client(o);
      const records: PatchRecord[] = [];
      for (const m of manifests) records.push(await publishPatch(api, m, o.publish));
      if (o.json) return console.log(JSON.stringify(records, null, 2));
      for (const r of records) console.log(publishedText(r));
    }),
);

program.addCommand(hostsCommand(DEFAULT_SERVER));

program.addCommand(
  adminCommand('patches', 'list uploaded patch levels per kernel build').action(async (o: AdminOpts) => {
    const patches = await client(o).request<PatchRecord[]>('GET', `${API_PREFIX}/patches`);
    if (o.json) return console.log(JSON.stringify(patches, null, 2));
    console.log(
      table(
        ['KERNEL', 'RELEASE', 'LEVEL', 'STATE', 'FIXES', 'CVES'],
        patches.map((p) => [
          p.kernelId.slice(0, 12),
          p.release,
          String(p.level),
          p.published ? 'published' : 'uploaded',
          p.fixIds.join(','),
          p.cves.join(',') || '-',
        ]),
      ),
    );
  }),
);

for (const c of inspectCommands()) program.addCommand(c);

program.addCommand(keysCommand());
program.addCommand(mirrorCommand());
program.addCommand(exportCommand(DEFAULT_SERVER));
for (const c of reportCommands(DEFAULT_SERVER)) program.addCommand(c);
program.addCommand(vexCommand(DEFAULT_SERVER));
program.addCommand(userspaceCommand(DEFAULT_SERVER));
program.addCommand(tripwireCommand(DEFAULT_SERVER));
for (const c of fleetCommands(DEFAULT_SERVER)) program.addCommand(c);
program.addCommand(fixesCommand(DEFAULT_SERVER));
program.addCommand(jobsCommand(DEFAULT_SERVER));
program.addCommand(coverageCommand(DEFAULT_SERVER));

showControlCharacters(process.stdout);
showControlCharacters(process.stderr);
program.parseAsync(process.argv).catch((err: unknown) => {
  if (isLivegraftError(err)) console.error(`error [${err.code}]: ${err.message}`);
  else console.error(`error: ${(err as Error).message}`);
  process.exitCode = 1;
});
