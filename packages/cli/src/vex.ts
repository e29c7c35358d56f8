import type { Command } from 'commander';
import { checkOutPath } from './connection.ts';
import { FleetApi } from './fleet-api.ts';
import { apiGet, connectedCommand, writeFileAtomic, type ConnectionOpts } from './report-http.ts';

/** `livegraft vex`: the OpenVEX document of one host or of the fleet, for scanners. */
export function vexCommand(defaultServer: string): Command {
  return connectedCommand('vex', 'OpenVEX v0.2.0 statements: CVEs fixed by live patches, and still open', defaultServer)
    .option('--host <host>', 'one host: id, unique hostname, or unique id prefix of 8+ characters (default: the fleet)')
    .option('--out <file>', 'write to this file (atomically) instead of standard output')
    .action(async (o: ConnectionOpts & { host?: string; out?: string }) => {
      // A missing directory is refused before a large document is downloaded for nothing.
      if (o.out !== undefined) checkOutPath(o.out);
      const path =
        o.host === undefined ? '/vex' : `/hosts/${encodeURIComponent(await new FleetApi(o).hostId(o.host))}/vex`;
      const doc = await apiGet(o, path);
      const pretty = `${JSON.stringify(JSON.parse(doc.toString('utf8')), null, 2)}\n`;
      if (o.out === undefined) return void process.stdout.write(pretty);
      await writeFileAtomic(o.out, pretty);
      console.error(`wrote ${o.out}`);
    });
}
