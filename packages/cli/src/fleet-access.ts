import { Command, InvalidArgumentError, Option } from 'commander';
import {
  type AuditEntry,
  type RegistrationKeyCreated,
  type RegistrationKeyRecord,
  type TokenCreated,
  type TokenRecord,
  ApiRole,
} from '@livegraft/protocol';
import { table } from './format.ts';
import { collect, connected, FleetApi, out, wholeNumber, type FleetOpts } from './fleet-api.ts';

/** The roles an API token may have, as the server's schema lists them. */
const API_ROLES = ApiRole.anyOf.map((m) => String(m.const));

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
