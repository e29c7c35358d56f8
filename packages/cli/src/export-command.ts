import { Command, Option } from 'commander';
import { readTokenFile } from './connection.ts';
import { exportBundle } from './export.ts';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** `livegraft export`: an air-gapped bundle (same layout as a mirror) plus README.txt. */
export function exportCommand(defaultServer: string): Command {
  return new Command('export')
    .description('write an air-gapped bundle: signed TUF metadata and the patch modules, same layout as a mirror')
    .addOption(new Option('--server <url>', 'patch server URL').env('LIVEGRAFT_SERVER').default(defaultServer))
    .option('--token <token>', 'admin API token (or LIVEGRAFT_TOKEN); sent along for proxies that require it')
    .option('--token-file <path>', 'file holding the admin API token')
    .requiredOption('--out <dir>', 'bundle directory')
    .option('--kernel <id>', 'only the modules of this kernel id (repeatable); metadata is always complete', collect)
    .action(async (o: { server: string; token?: string; tokenFile?: string; out: string; kernel?: string[] }) => {
      let token = o.token ?? process.env['LIVEGRAFT_TOKEN'];
      if (token === undefined && o.tokenFile !== undefined) token = readTokenFile(o.tokenFile);
      const r = await exportBundle({
        server: o.server,
        out: o.out,
        ...(token === undefined ? {} : { token }),
        ...(o.kernel === undefined ? {} : { kernels: o.kernel }),
      });
      console.log(
        `exported ${r.targets} module(s) and TUF metadata (root ${r.rootVersion}, targets ${r.targetsVersion}) to ${o.out}`,
      );
      console.log(
        `the bundle's timestamp expires at ${r.timestampExpires}: import it before then (see ${o.out}/README.txt)`,
      );
    });
}
