import { Command, InvalidArgumentError } from 'commander';
import { effectiveRelease, fixLines, type HostRecord, CLOCK_SKEW_WARN_SEC, humanDuration } from '@livegraft/protocol';
import { ago, table } from './format.ts';
import { connected, FleetApi, out, type FleetOpts } from './fleet-api.ts';
import { pinText } from './fleet-rollout.ts';

/** Fix ids listed in a table cell: a few, then how many more. */
function fewIds(ids: string[] | undefined, shown = 2): string {
  const list = ids ?? [];
  if (list.length === 0) return '-';
  const more = list.length - shown;
  return `${list.slice(0, shown).join(',')}${more > 0 ? ` +${more}` : ''}`;
}

function printHosts(hosts: HostRecord[]): void {
  const now = new Date();
  console.log(
    table(
      [
        'HOST',
        'ID',
        'FEED',
        'STATE',
        'EFFECTIVE KERNEL',
        'LEVEL',
        'WANTS',
        'AUTO',
        'IGNORED',
        'LAST CHECK-IN',
        'LAST ERROR',
      ],
      hosts.map((h) => [
        h.hostname,
        h.id.slice(0, 8),
        h.feed ?? '-',
        (h.revokedAt ?? null) !== null ? 'revoked' : h.state,
        h.effectiveRelease || effectiveRelease(h.release, h.appliedLevel),
        String(h.appliedLevel),
        h.desired === undefined || h.desired === null ? '-' : `${h.desired.level} (${h.desired.reason})`,
        h.autoUpdate === false ? 'off' : 'on',
        fewIds(h.ignore),
        ago(h.lastCheckinAt, now),
        h.lastError ?? '',
      ]),
    ),
  );
}

/** What `hosts show` says about the ignore-list and what it held back. */
function ignoreLines(rec: HostRecord): string[] {
  const lines = [`ignored fixes: ${(rec.ignore ?? []).join(', ') || '-'}`];
  const d = rec.desired ?? undefined;
  if (d?.ignoredFixes !== undefined && d.ignoredFixes.length > 0) {
    lines.push(`held at level ${d.level} by ignored fixes: ${d.ignoredFixes.join(', ')}`);
  }
  if (d?.ignoredRunning !== undefined && d.ignoredRunning.length > 0) {
    lines.push(
      `runs ignored fixes: ${d.ignoredRunning.join(', ')} (level ${rec.appliedLevel}; roll back or pin the host to remove them)`,
    );
  }
  return lines;
}

/** The applied level's fixes with their upstream commits, and the fixes its build left out. */
function appliedLines(rec: HostRecord): string[] {
  const a = rec.applied;
  if (a === undefined || a === null) return [];
  return [`level ${a.level} (${a.name}) fixes live: ${a.cves.join(', ') || '-'}`, ...fixLines(a.fixes, a.skipped)];
}

/** A warning when the host's agent last reported a clock far from the server's. */
export function clockLine(skewSec: number | null): string | undefined {
  if (skewSec === null || Math.abs(skewSec) <= CLOCK_SKEW_WARN_SEC) return undefined;
  return (
    `clock: ${humanDuration(skewSec)} ${skewSec > 0 ? 'ahead of' : 'behind'} the server; ` +
    "fix the host's time sync (NTP): signature expiry and check-in ages depend on it"
  );
}

function hostLine(rec: HostRecord): string {
  return `host ${rec.hostname} (${rec.id}): feed ${rec.feed ?? '-'}, auto-update ${rec.autoUpdate === false ? 'off' : 'on'}, tags ${(rec.tags ?? []).join(',') || '-'}, ignored fixes ${(rec.ignore ?? []).join(',') || '-'}`;
}

/** `livegraft hosts` lists; its subcommands move, tag, revoke, switch auto-update and edit the ignore-list. */
export function hostsCommand(server: string): Command {
  const hosts = connected(
    new Command('hosts').description('enrolled hosts: list, show, move, tag, ignore fixes, revoke, auto-update'),
    server,
  )
    .option('--feed <feed>', 'only hosts of this feed')
    .option('--tag <tag>', 'only hosts with this tag')
    .action(async (o: FleetOpts & { feed?: string; tag?: string }) => {
      const q = new URLSearchParams({
        ...(o.feed === undefined ? {} : { feed: o.feed }),
        ...(o.tag === undefined ? {} : { tag: o.tag }),
      });
      const list = await new FleetApi(o).get<HostRecord[]>(`/hosts${q.size > 0 ? `?${q.toString()}` : ''}`);
      out(o, list, () => printHosts(list));
    });
  hosts.addCommand(
    connected(
      new Command('show').description('one host: state, pins, desired level, reports').argument('<host>'),
      server,
    ).action(async (host: string, o: FleetOpts) => {
      const api = new FleetApi(o);
      const rec = await api.get<HostRecord>(`/hosts/${await api.hostId(host)}`);
      out(o, rec, () => {
        printHosts([rec]);
        console.log(`tags: ${(rec.tags ?? []).join(', ') || '-'}`);
        for (const p of rec.pins ?? []) console.log(`pinned: ${pinText(p)}`);
        for (const line of ignoreLines(rec)) console.log(line);
        for (const line of appliedLines(rec)) console.log(line);
        for (const t of rec.blockingTasks ?? []) console.log(`blocking the transition: ${t.comm} (pid ${t.pid})`);
        for (const e of rec.kernelEvents ?? []) console.log(`kernel ${e.kind} at ${e.at}: ${e.message}`);
        const clock = clockLine(rec.clockSkewSec ?? null);
        if (clock !== undefined) console.log(clock);
      });
    }),
  );
  const update = (name: string, description: string, args: string[], body: (...a: string[]) => object): Command =>
    connected(new Command(name).description(description), server)
      .argument('<host>', 'host id or hostname')
      .arguments(args.join(' '))
      .action(async (host: string, ...rest: unknown[]) => {
        const o = rest[rest.length - 2] as FleetOpts;
        const values = rest.slice(0, -2) as string[];
        const api = new FleetApi(o);
        const id = await api.hostId(host);
        const rec = await api.send<HostRecord>('PATCH', `/hosts/${id}`, body(...values));
        out(o, rec, () => console.log(hostLine(rec)));
      });
  // The API replaces the whole list; these read it, change it and send it back.
  const editIgnore = async (host: string, o: FleetOpts, change: (list: Set<string>) => void): Promise<void> => {
    const api = new FleetApi(o);
    const id = await api.hostId(host);
    const list = new Set((await api.get<HostRecord>(`/hosts/${id}`)).ignore ?? []);
    change(list);
    const rec = await api.send<HostRecord>('PATCH', `/hosts/${id}`, { ignore: [...list].sort() });
    out(o, rec, () => {
      console.log(hostLine(rec));
      for (const line of ignoreLines(rec).slice(1)) console.log(line);
    });
  };
  const fixArg = 'fix ids, as in the level manifests (the "id" of fix.json)';
  hosts.addCommand(
    connected(
      new Command('ignore')
        .description('never offer the host a level carrying these fixes (levels are cumulative: later ones too)')
        .argument('<host>', 'host id or hostname')
        .argument('<fix...>', fixArg),
      server,
    ).action(async (host: string, fixes: string[], o: FleetOpts) =>
      editIgnore(host, o, (list) => fixes.forEach((f) => list.add(f))),
    ),
  );
  hosts.addCommand(
    connected(
      new Command('unignore')
        .description('take fixes off the ignore-list: levels carrying them are offered again')
        .argument('<host>', 'host id or hostname')
        .argument('[fix...]', fixArg)
        .option('--all', 'clear the whole list'),
      server,
    ).action(async (host: string, fixes: string[], o: FleetOpts & { all?: boolean }) => {
      if ((o.all === true) === fixes.length > 0) {
        throw new InvalidArgumentError('name the fix ids to stop ignoring, or pass --all');
      }
      await editIgnore(host, o, (list) => (o.all === true ? list.clear() : fixes.forEach((f) => list.delete(f))));
    }),
  );
  hosts.addCommand(update('move', 'move a host to another feed', ['<feed>'], (feed) => ({ feed })));
  hosts.addCommand(
    update('auto-update', 'on: apply levels as they come; off: the host applies by hand', ['<on|off>'], (v) => {
      if (v !== 'on' && v !== 'off') throw new InvalidArgumentError('auto-update takes on or off');
      return { autoUpdate: v === 'on' };
    }),
  );
  hosts.addCommand(
    update('tag', "set a host's operator tags (replaces them; agent-reported tags stay)", ['[tags...]'], (...tags) => ({
      tags: tags.flat(),
    })),
  );
  hosts.addCommand(
    connected(
      new Command('revoke')
        .description("revoke a host's token: 401 from now, its push stream closes")
        .argument('<host>'),
      server,
    ).action(async (host: string, o: FleetOpts) => {
      const api = new FleetApi(o);
      const id = await api.hostId(host);
      await api.send('POST', `/hosts/${id}/revoke`);
      out(o, { revoked: id }, () => console.log(`revoked host ${id}; re-enrol it to bring it back`));
    }),
  );
  return hosts;
}
