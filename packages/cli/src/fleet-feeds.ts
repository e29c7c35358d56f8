import { Command, InvalidArgumentError } from 'commander';
import {
  type FeedCreate,
  type FeedRecord,
  type MaintenanceWindow,
  type PromotionRule,
  type Weekday,
} from '@livegraft/protocol';
import { table } from './format.ts';
import { connected, duration, FleetApi, out, percent, wholeNumber, type FleetOpts } from './fleet-api.ts';
import { pinText } from './fleet-rollout.ts';

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
