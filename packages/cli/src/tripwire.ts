import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import type { TripwireRecord } from '@livegraft/protocol';
import { table } from './format.ts';
import { apiJson, connectedCommand, query, type ConnectionOpts } from './report-http.ts';

function limit(value: string): number {
  if (!/^[0-9]{1,4}$/.test(value) || Number(value) < 1 || Number(value) > 1000) {
    throw new InvalidArgumentError('must be a whole number from 1 to 1000');
  }
  return Number(value);
}

/** `livegraft tripwires`: exploit attempts that live patches blocked and reported, newest first. */
export function tripwireCommand(defaultServer: string): Command {
  return connectedCommand(
    'tripwires',
    'exploit attempts blocked by live patches (LG_TRIPWIRE hits), newest first',
    defaultServer,
  )
    .option('--host <id>', 'only this host')
    .option('--cve <id>', 'only this CVE')
    .option('--limit <n>', 'at most n events (1-1000)', limit, 100)
    .option('--json', 'print JSON')
    .action(async (o: ConnectionOpts & { host?: string; cve?: string; limit: number; json?: boolean }) => {
      const events = await apiJson<TripwireRecord[]>(
        o,
        `/tripwires${query({ host: o.host, cve: o.cve, limit: o.limit })}`,
      );
      if (o.json === true) return console.log(JSON.stringify(events, null, 2));
      if (events.length === 0) return console.log('no tripwire events');
      console.log(
        table(
          ['AT', 'HOST', 'CVE', 'FIX', 'LEVEL', 'PID', 'UID', 'COMM'],
          events.map((e) => [
            e.at,
            e.hostname,
            e.cve,
            e.fixId ?? '-',
            e.level === null ? '-' : String(e.level),
            String(e.pid),
            String(e.uid),
            e.comm,
          ]),
        ),
      );
    });
}
