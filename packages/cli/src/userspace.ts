import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import type {
  HostUserspaceLibrary,
  UserspaceFeedLevel,
  UserspaceLevelRecord,
  UserspaceManifest,
  UserspacePromotion,
} from '@livegraft/protocol';
import { connected, FleetApi, wholeNumber, type FleetOpts } from './fleet-api.ts';
import { table } from './format.ts';

function buildId(value: string): string {
  if (!/^[0-9a-f]{16,80}$/.test(value)) throw new InvalidArgumentError('must be an ELF build-id (lower-case hex)');
  return value;
}

function out(o: FleetOpts, value: unknown, text: () => string): void {
  process.stdout.write(o.json === true ? `${JSON.stringify(value, null, 2)}\n` : text());
}

const levelsTable = (list: UserspaceLevelRecord[]): string =>
  list.length === 0
    ? 'no user-space levels\n'
    : `${table(
        ['build-id', 'level', 'library', 'package', 'CVEs', 'state'],
        list.map((l) => [
          l.buildId,
          String(l.level),
          l.soname,
          `${l.package} ${l.version}`,
          l.cves.join(' '),
          l.halted ? 'HALTED' : l.published ? 'published' : 'recorded',
        ]),
      )}\n`;

const feedsTable = (list: UserspaceFeedLevel[]): string =>
  list.length === 0
    ? 'no feed holds a user-space level\n'
    : `${table(
        ['feed', 'build-id', 'level', 'was', 'source', 'set at'],
        list.map((l) => [l.feed, l.buildId, String(l.level), String(l.previousLevel), l.source, l.setAt]),
      )}\n`;

/**
 * `livegraft userspace ...`: user-space levels per library build-id, with the
 * same feeds, promotion, halts and pins as kernel levels.
 */
export function userspaceCommand(server: string): Command {
  const us = connected(
    new Command('userspace').description('user-space levels (per library build-id): feeds, promotion, halts, pins'),
    server,
  ).action(async (o: FleetOpts) => {
    const list = await new FleetApi(o).get<UserspaceLevelRecord[]>('/userspace/levels');
    out(o, list, () => levelsTable(list));
  });
  const sub = (name: string, description: string) => {
    const c = connected(new Command(name).description(description), server);
    us.addCommand(c);
    return c;
  };

  sub('levels', 'recorded levels, per build-id')
    .option('--build-id <id>', 'one library build', buildId)
    .action(async (o: FleetOpts & { buildId?: string }) => {
      const q = o.buildId === undefined ? '' : `?buildId=${o.buildId}`;
      const list = await new FleetApi(o).get<UserspaceLevelRecord[]>(`/userspace/levels${q}`);
      out(o, list, () => levelsTable(list));
    });

  sub('publish', 'record a built level (its manifest, the code object beside it) and publish it')
    .argument('<manifest>', 'the level manifest JSON written by livegraft-build-userspace')
    .option('--no-publish', 'record it only')
    .action(async (file: string, o: FleetOpts & { publish: boolean }) => {
      const manifest = JSON.parse(readFileSync(file, 'utf8')) as UserspaceManifest;
      const object = readFileSync(join(dirname(file), manifest.code.file)).toString('base64');
      const rec = await new FleetApi(o).send<UserspaceLevelRecord>('POST', '/userspace/levels', {
        manifest,
        object,
        publish: o.publish,
      });
      out(o, rec, () => levelsTable([rec]));
    });

  sub('feeds', "the feeds' levels per build-id")
    .option('--feed <name>', 'one feed')
    .option('--build-id <id>', 'one library build', buildId)
    .action(async (o: FleetOpts & { feed?: string; buildId?: string }) => {
      const q = new URLSearchParams();
      if (o.feed !== undefined) q.set('feed', o.feed);
      if (o.buildId !== undefined) q.set('buildId', o.buildId);
      const list = await new FleetApi(o).get<UserspaceFeedLevel[]>(`/userspace/feeds${q.size > 0 ? `?${q}` : ''}`);
      out(o, list, () => feedsTable(list));
    });

  sub('set-level', "set a feed's level for a build by hand (below the current one: its hosts roll back)")
    .argument('<feed>')
    .argument('<build-id>', 'library build-id', buildId)
    .argument('<level>', 'level (0: restore the original code)', wholeNumber)
    .action(async (feed: string, id: string, level: number, o: FleetOpts) => {
      const row = await new FleetApi(o).send<UserspaceFeedLevel>(
        'PUT',
        `/userspace/feeds/${encodeURIComponent(feed)}/levels/${id}`,
        { level },
      );
      out(o, row, () => feedsTable([row]));
    });

  sub('promote', "promote a feed's user-space levels now, whatever its rule says")
    .argument('<feed>')
    .option('--to <feed>', 'destination (default: the feed it promotes to)')
    .option('--build-id <id>', 'only this library build', buildId)
    .action(async (feed: string, o: FleetOpts & { to?: string; buildId?: string }) => {
      const done = await new FleetApi(o).send<UserspacePromotion[]>(
        'POST',
        `/userspace/feeds/${encodeURIComponent(feed)}/promote`,
        { ...(o.to === undefined ? {} : { to: o.to }), ...(o.buildId === undefined ? {} : { buildId: o.buildId }) },
      );
      out(o, done, () =>
        done.length === 0
          ? 'nothing to promote\n'
          : done.map((p) => `${p.buildId}: level ${p.level} ${p.from} -> ${p.to} (was ${p.previous})\n`).join(''),
      );
    });

  sub('halt', 'halt a level everywhere: not offered, not promoted; hosts step back to the level below')
    .argument('<build-id>', 'library build-id', buildId)
    .argument('<level>', 'level', wholeNumber)
    .requiredOption('--reason <text>', 'why (audit log)')
    .action(async (id: string, level: number, o: FleetOpts & { reason: string }) => {
      const r = await new FleetApi(o).send('POST', `/userspace/levels/${id}/${level}/halt`, { reason: o.reason });
      out(o, r, () => `level ${level} of ${id} halted\n`);
    });

  sub('resume', 'lift the halt of a level')
    .argument('<build-id>', 'library build-id', buildId)
    .argument('<level>', 'level', wholeNumber)
    .action(async (id: string, level: number, o: FleetOpts) => {
      const r = await new FleetApi(o).send<{ ok: boolean }>('DELETE', `/userspace/levels/${id}/${level}/halt`);
      out(o, r, () =>
        r.ok ? `level ${level} of ${id} rolls out again\n` : `level ${level} of ${id} was not halted\n`,
      );
    });

  sub('pin', "hold a host's level for a build (0: restore the original code on that host)")
    .argument('<host>', 'host id or hostname')
    .argument('<build-id>', 'library build-id', buildId)
    .argument('<level>', 'level', wholeNumber)
    .action(async (host: string, id: string, level: number, o: FleetOpts) => {
      const api = new FleetApi(o);
      const r = await api.send('PUT', `/hosts/${await api.hostId(host)}/userspace-pins/${id}`, { level });
      out(o, r, () => `${host} pinned at level ${level} of ${id}\n`);
    });

  sub('unpin', "let a host follow its feed's level for a build again")
    .argument('<host>', 'host id or hostname')
    .argument('<build-id>', 'library build-id', buildId)
    .action(async (host: string, id: string, o: FleetOpts) => {
      const api = new FleetApi(o);
      const r = await api.send('DELETE', `/hosts/${await api.hostId(host)}/userspace-pins/${id}`);
      out(o, r, () => `${host} follows its feed for ${id}\n`);
    });

  sub('host', "a host's libraries as it last reported them")
    .argument('<host>', 'host id or hostname')
    .action(async (host: string, o: FleetOpts) => {
      const api = new FleetApi(o);
      const libs = await api.get<HostUserspaceLibrary[]>(`/hosts/${await api.hostId(host)}/userspace`);
      out(o, libs, () =>
        libs.length === 0
          ? 'no user-space libraries reported\n'
          : `${table(
              ['library', 'build-id', 'level', 'patched', 'unpatched', 'refused', 'pinned', 'CVEs'],
              libs.map((l) => [
                l.soname,
                l.buildId,
                `${l.level}${l.halted === true ? ' HALTED' : ''}`,
                String(l.patched),
                String(l.unpatched),
                String(l.refused),
                l.pinned === null ? '' : String(l.pinned),
                l.cves.join(' '),
              ]),
            )}\n`,
      );
    });
  return us;
}
