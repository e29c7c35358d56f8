import { Command, InvalidArgumentError } from 'commander';
import { type HaltRecord, type HostRecord, type PinRecord } from '@livegraft/protocol';
import { table } from './format.ts';
import { connected, FleetApi, out, wholeNumber, type FleetOpts } from './fleet-api.ts';

export function pinText(p: PinRecord): string {
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
