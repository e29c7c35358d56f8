import { Command, InvalidArgumentError, Option } from 'commander';
import {
  effectiveRelease,
  fixLines,
  type AuditEntry,
  type FeedCreate,
  type FeedRecord,
  type HaltRecord,
  type HostRecord,
  type MaintenanceWindow,
  type PinRecord,
  type PromotionRule,
  type RegistrationKeyCreated,
  type RegistrationKeyRecord,
  type TokenCreated,
  type TokenRecord,
  type Weekday,
  CLOCK_SKEW_WARN_SEC,
  humanDuration,
  ApiRole,
} from '@livegraft/protocol';
import { ago, table } from './format.ts';
import { collect, connected, duration, FleetApi, percent, wholeNumber, type FleetOpts } from './fleet-api.ts';

/** The roles an API token may have, as the server's schema lists them. */
const API_ROLES = ApiRole.anyOf.map((m) => String(m.const));

const DAYS = new Set(['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun']);

/** "sat,sun 02:00-04:00" (UTC) -> a maintenance window. */
export function parseWindow(value: string, previous: MaintenanceWindow[] = []): MaintenanceWindow[] {
  const m = /^([a-z,]+) ([0-2][0-9]:[0-5][0-9])-([0-2][0-9]:[0-5][0-9])$/.exec(value.trim().toLowerCase());
  const days = m?.[1]?.split(',') ?? [];
  if (m === null || days.length === 0 || !days.every((d) => DAYS.has(d))) {
    throw new InvalidArgumentError('must look like "sat,sun 02:00-04:00" (days mon..sun, times UTC)');
  }
  return [...previous, { days: days as Weekday[], start: m[2] as string, end: m[3] as string }];
}

interface FeedFlags extends FleetOpts {
  description?: string;
  promotesTo?: string | false;
  autoPublish?: boolean;
  after?: number;
  minHosts?: number;
  minPercent?: number;
  healthy?: number;
  promotion?: boolean;
  window?: MaintenanceWindow[];
  noWindows?: boolean;
  requireValidated?: boolean;
}

function feedOptions(cmd: Command): Command {
  return cmd
    .option('--description <text>', 'what the feed is for')
    .option('--promotes-to <feed>', 'the feed its levels move on to')
    .option('--after <duration>', 'promotion rule: time in this feed first (e.g. 24h)', duration)
    .option('--min-hosts <n>', 'promotion rule: hosts of this feed that applied the level', wholeNumber)
    .option('--min-percent <p>', 'promotion rule: percent of this feed that applied it', percent)
    .option('--healthy <duration>', 'promotion rule: how long the host condition held with no failure', duration)
    .option('--window <spec>', 'maintenance window of this feed, UTC, repeatable: "sat,sun 02:00-04:00"', parseWindow)
    .option('--require-validated', 'only levels with a passed VM validation enter (default for new feeds but canary)')
    .option('--no-require-validated', 'hand-built levels without a VM validation may enter too');
}

function feedBody(o: FeedFlags): Omit<FeedCreate, 'name'> {
  const rule: PromotionRule = {
    ...(o.after === undefined ? {} : { afterSec: o.after }),
    ...(o.minHosts === undefined ? {} : { minHosts: o.minHosts }),
    ...(o.minPercent === undefined ? {} : { minPercent: o.minPercent }),
    ...(o.healthy === undefined ? {} : { healthySec: o.healthy }),
  };
  return {
    ...(o.description === undefined ? {} : { description: o.description }),
    ...(o.promotesTo === undefined ? {} : { promotesTo: o.promotesTo === false ? null : o.promotesTo }),
    ...(o.autoPublish === undefined ? {} : { autoPublish: o.autoPublish }),
    ...(Object.keys(rule).length > 0 ? { promotion: rule } : o.promotion === false ? { promotion: null } : {}),
    ...(o.window !== undefined ? { windows: o.window } : o.noWindows === true ? { windows: [] } : {}),
    ...(o.requireValidated === undefined ? {} : { requireValidated: o.requireValidated }),
  };
}

function ruleText(r: PromotionRule | null): string {
  if (r === null) return 'manual';
  const parts = [
    r.afterSec === undefined ? undefined : `after ${r.afterSec}s`,
    r.minHosts === undefined ? undefined : `>=${r.minHosts} hosts`,
    r.minPercent === undefined ? undefined : `>=${r.minPercent}%`,
    r.healthySec === undefined ? undefined : `healthy ${r.healthySec}s`,
  ].filter((x) => x !== undefined);
  return parts.length === 0 ? 'manual' : parts.join(', ');
}

function printFeeds(feeds: FeedRecord[]): void {
  console.log(
    table(
      ['FEED', 'HOSTS', 'AUTO-PUBLISH', 'VALIDATED', 'PROMOTES TO', 'RULE', 'WINDOWS', 'LEVELS (kernel:level)'],
      feeds.map((f) => [
        f.name,
        String(f.hostCount),
        f.autoPublish ? 'yes' : 'no',
        f.requireValidated ? 'required' : 'no',
        f.promotesTo ?? '-',
        f.promotesTo === null ? '-' : ruleText(f.promotion),
        f.windows.map((w) => `${w.days.join(',')} ${w.start}-${w.end}`).join('; ') || 'any time',
        f.levels
          .map((l) => `${l.kernelId.slice(0, 12)}:${l.level}${l.haltedAt === null ? '' : '(halted)'}`)
          .join(' ') || '-',
      ]),
    ),
  );
}

function out(o: FleetOpts, value: unknown, text: () => void): void {
  if (o.json === true) console.log(JSON.stringify(value, null, 2));
  else text();
}

export function feedsCommand(server: string): Command {
  const feeds = connected(new Command('feeds').description('rollout feeds (channels) and their levels'), server).action(
    async (o: FleetOpts) => {
      const list = await new FleetApi(o).get<FeedRecord[]>('/feeds');
      out(o, list, () => printFeeds(list));
    },
  );
  feeds.addCommand(
    connected(new Command('list').description('list feeds'), server).action(async (o: FleetOpts) => {
      const list = await new FleetApi(o).get<FeedRecord[]>('/feeds');
      out(o, list, () => printFeeds(list));
    }),
  );
  feeds.addCommand(
    connected(
      new Command('show').description('one feed, with pins and per-kernel levels').argument('<feed>'),
      server,
    ).action(async (name: string, o: FleetOpts) => {
      const f = await new FleetApi(o).get<FeedRecord>(`/feeds/${encodeURIComponent(name)}`);
      out(o, f, () => {
        printFeeds([f]);
        for (const l of f.levels) {
          const halted = l.haltedAt === null ? '' : `  HALTED ${l.haltedAt}: ${l.haltReason ?? ''}`;
          console.log(`  ${l.kernelId}  level ${l.level} (was ${l.previousLevel}, ${l.source} ${l.setAt})${halted}`);
        }
        for (const p of f.pins) console.log(`  pinned: ${pinText(p)}`);
      });
    }),
  );
  feeds.addCommand(
    feedOptions(connected(new Command('create').description('create a feed').argument('<feed>'), server))
      .option('--auto-publish', 'newly published levels land here at once')
      .action(async (name: string, o: FeedFlags) => {
        const f = await new FleetApi(o).send<FeedRecord>('POST', '/feeds', { name, ...feedBody(o) });
        out(o, f, () => console.log(`created feed ${f.name}`));
      }),
  );
  feeds.addCommand(
    feedOptions(connected(new Command('update').description("change a feed's settings").argument('<feed>'), server))
      .option('--auto-publish', 'newly published levels land here at once')
      .option('--no-auto-publish', 'levels arrive only by promotion or by hand')
      .option('--no-promotes-to', 'promote to no feed')
      .option('--no-promotion', 'no promotion rule: promote by hand only')
      .option('--no-windows', 'drop the maintenance windows (promote any time)')
      .action(async (name: string, o: FeedFlags & { windows?: boolean }) => {
        const body = feedBody({ ...o, ...(o.windows === false ? { noWindows: true } : {}) });
        const f = await new FleetApi(o).send<FeedRecord>('PATCH', `/feeds/${encodeURIComponent(name)}`, body);
        out(o, f, () => console.log(`updated feed ${f.name}`));
      }),
  );
  feeds.addCommand(
    connected(
      new Command('delete').description('delete a feed without hosts or keys').argument('<feed>'),
      server,
    ).action(async (name: string, o: FleetOpts) => {
      await new FleetApi(o).send('DELETE', `/feeds/${encodeURIComponent(name)}`);
      out(o, { deleted: name }, () => console.log(`deleted feed ${name}`));
    }),
  );
  feeds.addCommand(
    connected(
      new Command('set-level')
        .description("set a feed's level for one kernel build (lower needs --allow-downgrade; see also rollback)")
        .argument('<feed>')
        .argument('<kernel>', 'kernel id or a unique prefix (8+ hex digits)')
        .argument('<level>', 'patch level, 0 = none', wholeNumber),
      server,
    )
      .option('--allow-downgrade', 'hosts above the level go down to it live')
      .action(async (feed: string, kernel: string, level: number, o: FleetOpts & { allowDowngrade?: boolean }) => {
        const api = new FleetApi(o);
        const kernelId = await api.kernelId(kernel);
        const f = await api.send<FeedRecord>('PUT', `/feeds/${encodeURIComponent(feed)}/levels/${kernelId}`, {
          level,
          allowDowngrade: o.allowDowngrade === true,
        });
        out(o, f, () => console.log(`feed ${feed} is at level ${level} for kernel ${kernelId.slice(0, 12)}`));
      }),
  );
  return feeds;
}

function pinText(p: PinRecord): string {
  const what =
    p.level !== null ? `level ${p.level} of ${p.kernelId?.slice(0, 12) ?? '?'}` : `cut-off ${p.cutoff ?? ''}`;
  return `${p.scope} ${p.subject}: ${what}${p.reason === 'rollback' ? ' (rollback)' : ''} by ${p.createdBy}`;
}

function scopeArg(value: string): 'feed' | 'host' | 'tag' {
  if (value !== 'feed' && value !== 'host' && value !== 'tag')
    throw new InvalidArgumentError('must be feed, host or tag');
  return value;
}

async function subjectPath(api: FleetApi, scope: 'feed' | 'host' | 'tag', subject: string): Promise<string> {
  const id = scope === 'host' ? await api.hostId(subject) : subject;
  return `/${scope}s/${encodeURIComponent(id)}/pin`;
}

export function promoteCommand(server: string): Command {
  return connected(
    new Command('promote')
      .description("copy a feed's levels to the feed it promotes to (or --to), now, ignoring the rule")
      .argument('<feed>'),
    server,
  )
    .option('--to <feed>', 'destination feed')
    .option('--kernel <id>', 'one kernel build only')
    .action(async (feed: string, o: FleetOpts & { to?: string; kernel?: string }) => {
      const api = new FleetApi(o);
      const kernelId = o.kernel === undefined ? undefined : await api.kernelId(o.kernel);
      const res = await api.send<{ promoted: { to: string; kernelId: string; level: number }[] }>(
        'POST',
        `/feeds/${encodeURIComponent(feed)}/promote`,
        { ...(o.to === undefined ? {} : { to: o.to }), ...(kernelId === undefined ? {} : { kernelId }) },
      );
      out(o, res, () => {
        if (res.promoted.length === 0) console.log('nothing to promote (already there, or halted)');
        for (const p of res.promoted) console.log(`promoted level ${p.level} of ${p.kernelId.slice(0, 12)} to ${p.to}`);
      });
    });
}

export function pinCommands(server: string): Command[] {
  const pin = connected(
    new Command('pin')
      .description('pin a feed, a host or a tag to a level (with --kernel) or to a cut-off date')
      .argument('<scope>', 'feed, host or tag', scopeArg)
      .argument('<subject>', 'feed name, host id/hostname, or tag'),
    server,
  )
    .option('--level <n>', 'patch level (needs --kernel; defaults to the host kernel for a host)', wholeNumber)
    .option('--kernel <id>', 'kernel id or unique prefix')
    .option('--cutoff <date>', 'nothing published after this date (ISO 8601)')
    .action(
      async (
        scope: 'feed' | 'host' | 'tag',
        subject: string,
        o: FleetOpts & { level?: number; kernel?: string; cutoff?: string },
      ) => {
        const api = new FleetApi(o);
        let kernelId = o.kernel === undefined ? undefined : await api.kernelId(o.kernel);
        if (o.level !== undefined && kernelId === undefined && scope === 'host') {
          kernelId = (await api.get<HostRecord>(`/hosts/${await api.hostId(subject)}`)).kernelId;
        }
        let cutoff = o.cutoff;
        if (cutoff !== undefined) {
          const t = Date.parse(cutoff);
          if (Number.isNaN(t)) throw new InvalidArgumentError(`--cutoff ${cutoff} is not a date`);
          cutoff = new Date(t).toISOString();
        }
        const body = {
          ...(kernelId === undefined ? {} : { kernelId }),
          ...(o.level === undefined ? {} : { level: o.level }),
          ...(cutoff === undefined ? {} : { cutoff }),
        };
        const p = await api.send<PinRecord>('PUT', await subjectPath(api, scope, subject), body);
        out(o, p, () => console.log(`pinned ${pinText(p)}`));
      },
    );
  const unpin = connected(
    new Command('unpin')
      .description('remove the pins of a feed, host or tag')
      .argument('<scope>', 'feed, host or tag', scopeArg)
      .argument('<subject>'),
    server,
  )
    .option('--kernel <id>', "only this kernel's level pin (and any cut-off)")
    .action(async (scope: 'feed' | 'host' | 'tag', subject: string, o: FleetOpts & { kernel?: string }) => {
      const api = new FleetApi(o);
      const q = o.kernel === undefined ? '' : `?kernelId=${await api.kernelId(o.kernel)}`;
      const res = await api.send<{ removed: number }>('DELETE', `${await subjectPath(api, scope, subject)}${q}`);
      out(o, res, () => console.log(`removed ${res.removed} pin(s) of ${scope} ${subject}`));
    });
  return [pin, unpin];
}

export function rollbackCommand(server: string): Command {
  return connected(
    new Command('rollback').description('move a feed, or every host with a tag, back to a level; agents go down live'),
    server,
  )
    .option('--feed <feed>', 'the feed to roll back')
    .option('--tag <tag>', 'the tag whose hosts roll back')
    .requiredOption('--kernel <id>', 'kernel id or unique prefix')
    .requiredOption('--level <n>', 'level to go back to (0 = unload the patch)', wholeNumber)
    .action(async (o: FleetOpts & { feed?: string; tag?: string; kernel: string; level: number }) => {
      if ((o.feed === undefined) === (o.tag === undefined)) {
        throw new InvalidArgumentError('give exactly one of --feed and --tag');
      }
      const api = new FleetApi(o);
      const kernelId = await api.kernelId(o.kernel);
      const target = o.feed !== undefined ? { feed: o.feed } : { tag: o.tag };
      await api.send('POST', '/rollback', { ...target, kernelId, level: o.level });
      out(o, { ...target, kernelId, level: o.level }, () =>
        console.log(
          `rolled back ${o.feed !== undefined ? `feed ${o.feed}` : `tag ${o.tag ?? ''}`} to level ${o.level} of ${kernelId.slice(0, 12)}`,
        ),
      );
    });
}

export function haltCommands(server: string): Command[] {
  const halts = connected(
    new Command('halts').description('levels whose rollout stopped after a failure'),
    server,
  ).action(async (o: FleetOpts) => {
    const list = await new FleetApi(o).get<HaltRecord[]>('/halts');
    out(o, list, () =>
      console.log(
        table(
          ['KERNEL', 'LEVEL', 'SINCE', 'HOST', 'REASON'],
          list.map((h) => [h.kernelId.slice(0, 12), String(h.level), h.at, h.hostId ?? '-', h.reason]),
        ),
      ),
    );
  });
  const resume = connected(
    new Command('resume')
      .description('lift a halt: the level rolls out and promotes again')
      .argument('<kernel>')
      .argument('<level>', 'halted level', wholeNumber),
    server,
  ).action(async (kernel: string, level: number, o: FleetOpts) => {
    const api = new FleetApi(o);
    const kernelId = await api.kernelId(kernel);
    await api.send('DELETE', `/halts/${kernelId}/${level}`);
    out(o, { resumed: { kernelId, level } }, () => console.log(`resumed level ${level} of ${kernelId.slice(0, 12)}`));
  });
  return [halts, resume];
}

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

export function tokensCommand(server: string): Command {
  const tokens = connected(new Command('tokens').description('API tokens with roles (admin only)'), server).action(
    async (o: FleetOpts) => printTokens(o, await new FleetApi(o).get<TokenRecord[]>('/tokens')),
  );
  tokens.addCommand(
    connected(new Command('list').description('list API tokens'), server).action(async (o: FleetOpts) =>
      printTokens(o, await new FleetApi(o).get<TokenRecord[]>('/tokens')),
    ),
  );
  tokens.addCommand(
    connected(
      new Command('create').description('create a token; its secret is printed once').argument('<name>'),
      server,
    )
      .addOption(
        new Option('--role <role>', 'admin, operator (rollouts), viewer (read-only) or worker (build jobs only)')
          .choices(API_ROLES)
          .makeOptionMandatory(),
      )
      .option(
        '--expires <duration>',
        'stop working after this long, e.g. 90d, 12w or 36h (default: never)',
        expiryDuration,
      )
      .action(async (name: string, o: FleetOpts & { role: string; expires?: number }) => {
        const body = { name, role: o.role, ...(o.expires === undefined ? {} : { expiresInSec: o.expires }) };
        const t = await new FleetApi(o).send<TokenCreated>('POST', '/tokens', body);
        const until = typeof t.expiresAt === 'string' ? `, expires ${t.expiresAt}` : '';
        out(o, t, () =>
          console.log(`${t.token}\n(token ${t.id}, role ${t.role}${until}: store it now, it is not shown again)`),
        );
      }),
  );
  tokens.addCommand(
    connected(new Command('revoke').description('revoke a token').argument('<id>'), server).action(
      async (id: string, o: FleetOpts) => {
        await new FleetApi(o).send('POST', `/tokens/${encodeURIComponent(id)}/revoke`);
        out(o, { revoked: id }, () => console.log(`revoked token ${id}`));
      },
    ),
  );
  return tokens;
}

/** `90d`, `12w`, `36h` as seconds. */
export function expiryDuration(value: string): number {
  const m = /^([1-9][0-9]{0,5})([hdw])$/.exec(value.trim());
  if (m === null) throw new InvalidArgumentError('give a duration such as 90d, 12w or 36h');
  const seconds = Number(m[1]) * { h: 3600, d: 86_400, w: 604_800 }[m[2] as 'h' | 'd' | 'w'];
  if (seconds < 3600 || seconds > 3650 * 86_400) throw new InvalidArgumentError('between 1h and 3650d');
  return seconds;
}

function expiryText(expiresAt: string | null | undefined): string {
  if (typeof expiresAt !== 'string') return 'never';
  return Date.parse(expiresAt) <= Date.now() ? `${expiresAt} (expired)` : expiresAt;
}

function printTokens(o: FleetOpts, list: TokenRecord[]): void {
  out(o, list, () =>
    console.log(
      table(
        ['ID', 'NAME', 'ROLE', 'CREATED', 'BY', 'EXPIRES', 'REVOKED'],
        list.map((t) => [t.id, t.name, t.role, t.createdAt, t.createdBy, expiryText(t.expiresAt), t.revokedAt ?? '-']),
      ),
    ),
  );
}

export function registrationKeysCommand(server: string): Command {
  const keys = connected(
    new Command('registration-keys').description('enrolment keys bound to a feed and tags (admin only)'),
    server,
  ).action(async (o: FleetOpts) => {
    const list = await new FleetApi(o).get<RegistrationKeyRecord[]>('/registration-keys');
    out(o, list, () =>
      console.log(
        table(
          ['ID', 'NAME', 'FEED', 'TAGS', 'CREATED', 'REVOKED'],
          list.map((k) => [k.id, k.name, k.feed, k.tags.join(',') || '-', k.createdAt, k.revokedAt ?? '-']),
        ),
      ),
    );
  });
  keys.addCommand(
    connected(new Command('create').description('create a key; printed once').argument('<name>'), server)
      .requiredOption('--feed <feed>', 'feed its hosts enrol into')
      .option('--tag <tag>', 'tag its hosts get (repeatable)', collect, [])
      .action(async (name: string, o: FleetOpts & { feed: string; tag: string[] }) => {
        const k = await new FleetApi(o).send<RegistrationKeyCreated>('POST', '/registration-keys', {
          name,
          feed: o.feed,
          tags: o.tag,
        });
        out(o, k, () =>
          console.log(`${k.key}\n(key ${k.id} enrols into ${k.feed}: store it now, it is not shown again)`),
        );
      }),
  );
  keys.addCommand(
    connected(new Command('revoke').description('revoke a registration key').argument('<id>'), server).action(
      async (id: string, o: FleetOpts) => {
        await new FleetApi(o).send('POST', `/registration-keys/${encodeURIComponent(id)}/revoke`);
        out(o, { revoked: id }, () => console.log(`revoked registration key ${id}`));
      },
    ),
  );
  return keys;
}

export function auditCommand(server: string): Command {
  return connected(new Command('audit').description('who changed what, when, from where (newest first)'), server)
    .option('--limit <n>', 'entries at most (1..1000)', wholeNumber)
    .option('--action <action>', 'only this action, e.g. feed.promote, rollback.feed, rollout.halt')
    .option('--since <date>', 'only entries at or after this time (ISO 8601)')
    .action(async (o: FleetOpts & { limit?: number; action?: string; since?: string }) => {
      const q = new URLSearchParams();
      if (o.limit !== undefined) q.set('limit', String(o.limit));
      if (o.action !== undefined) q.set('action', o.action);
      if (o.since !== undefined) q.set('since', o.since);
      const list = await new FleetApi(o).get<AuditEntry[]>(`/audit${q.size > 0 ? `?${q.toString()}` : ''}`);
      out(o, list, () =>
        console.log(
          table(
            ['WHEN', 'WHO', 'ROLE', 'FROM', 'ACTION', 'TARGET', 'DETAILS'],
            list.map((e) => [
              e.at,
              e.actor.name,
              e.actor.role,
              e.ip ?? '-',
              e.action,
              e.target,
              JSON.stringify(e.details ?? null).slice(0, 80),
            ]),
          ),
        ),
      );
    });
}

/** Every fleet command, for bin.ts to add. */
export function fleetCommands(server: string): Command[] {
  return [
    feedsCommand(server),
    promoteCommand(server),
    ...pinCommands(server),
    rollbackCommand(server),
    ...haltCommands(server),
    tokensCommand(server),
    registrationKeysCommand(server),
    auditCommand(server),
  ];
}
