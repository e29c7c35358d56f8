import type { Command } from 'commander';
import { apiGet, connectedCommand, writeFileAtomic, type ConnectionOpts } from './report-http.ts';

/** `livegraft vex`: the OpenVEX document of one host or of the fleet, for scanners. */
export function vexCommand(defaultServer: string): Command {
  return connectedCommand('vex', 'OpenVEX v0.2.0 statements: CVEs fixed by live patches, and still open', defaultServer)
    .option('--host <id>', 'one host (default: the whole fleet)')
    .option('--out <file>', 'write to this file (atomically) instead of standard output')
    .action(async (o: ConnectionOpts & { host?: string; out?: string }) => {
      const path = o.host === undefined ? '/vex' : `/hosts/${encodeURIComponent(o.host)}/vex`;
      const doc = await apiGet(o, path);
      const pretty = `${JSON.stringify(JSON.parse(doc.toString('utf8')), null, 2)}\n`;
      if (o.out === undefined) return void process.stdout.write(pretty);
      await writeFileAtomic(o.out, pretty);
      console.error(`wrote ${o.out}`);
    });
}
