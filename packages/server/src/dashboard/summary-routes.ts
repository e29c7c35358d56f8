import type { Kysely } from 'kysely';
import { Type } from 'typebox';
import { LivegraftError, type AuditEntry } from '@livegraft/protocol';
import {
  ActivityQuery,
  CvePage,
  CvePageQuery,
  DashboardActivity,
  DashboardCompliance,
  DashboardOverview,
  DashboardRollouts,
  HostHistory,
  HostPage,
  HostPageQuery,
  MAX_APPLY_HISTORY,
  type ActivityItem,
} from '@livegraft/protocol/dashboard';
import { mayRead, READ_ROLE } from '@livegraft/protocol/dashboard-rules';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import type { ApplyLog } from './applies.ts';
import { ComplianceFolder } from './compliance-fold.ts';
import { HostTable } from './host-table.ts';
import { cvePage, HISTORY_DAYS } from './summaries.ts';
import { OverviewCounter } from './overview.ts';

/** Lines of live activity a page load gets unless it asks for fewer. */
const DEFAULT_ACTIVITY = 30;
/** Audit actions that are bookkeeping, not fleet activity. */
const QUIET_ACTIONS = ['session.create'];
/** Audited changes listed per host. */
const MAX_HOST_CHANGES = 200;

const HostParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });

interface AuditDb {
  audit_log: {
    id: string;
    at: string;
    actor_id: string;
    actor_name: string;
    actor_role: string;
    ip: string | null;
    action: string;
    target: string;
    details_json: string;
  };
}

/**
 * The dashboard's summaries under /api/v1/dashboard: what its pages show,
 * computed on the server so a page downloads kilobytes whatever the fleet's
 * size. Each answers to the role rules the other routes use (READ_ROLE).
 */
export function dashboardSummaryRoutes(
  api: App,
  ctx: RouteContext,
  db: Kysely<unknown>,
  applies: ApplyLog,
  changes: () => number,
): void {
  const audit = db as Kysely<AuditDb>;
  const folder = new ComplianceFolder({ db, compliance: ctx.compliance, clock: ctx.clock });
  const overview = new OverviewCounter(ctx, changes);
  const hostTable = new HostTable(ctx, changes);

  api.get(
    '/dashboard/overview',
    { config: { answer: DashboardOverview }, onRequest: guard(ctx.auth, READ_ROLE.fleet) },
    async (req): Promise<DashboardOverview> => {
      const role = req.principal?.kind === 'admin' ? req.principal.role : 'viewer';
      return overview.get(mayRead(role, 'compliance'));
    },
  );

  api.get(
    '/dashboard/hosts',
    {
      schema: { querystring: HostPageQuery },
      config: { answer: HostPage },
      onRequest: guard(ctx.auth, READ_ROLE.fleet),
    },
    async (req): Promise<HostPage> => {
      const role = req.principal?.kind === 'admin' ? req.principal.role : 'viewer';
      return hostTable.page(req.query, mayRead(role, 'compliance'));
    },
  );

  api.get(
    '/dashboard/rollouts',
    { config: { answer: DashboardRollouts }, onRequest: guard(ctx.auth, READ_ROLE.fleet) },
    async (): Promise<DashboardRollouts> => hostTable.rollouts(),
  );

  api.get(
    '/dashboard/compliance',
    { config: { answer: DashboardCompliance }, onRequest: guard(ctx.auth, READ_ROLE.compliance) },
    async (): Promise<DashboardCompliance> => {
      const f = await folder.fold(HISTORY_DAYS);
      return { generatedAt: f.generatedAt, summary: f.summary, historyDays: HISTORY_DAYS, history: f.history };
    },
  );

  api.get(
    '/dashboard/cves',
    {
      schema: { querystring: CvePageQuery },
      config: { answer: CvePage },
      onRequest: guard(ctx.auth, READ_ROLE.compliance),
    },
    async (req): Promise<CvePage> => {
      const f = await folder.fold(HISTORY_DAYS);
      return cvePage(f.openCves, req.query.q, req.query.offset, req.query.limit);
    },
  );

  api.get(
    '/dashboard/activity',
    {
      schema: { querystring: ActivityQuery },
      config: { answer: DashboardActivity },
      onRequest: guard(ctx.auth, READ_ROLE.fleet),
    },
    async (req): Promise<DashboardActivity> => {
      const limit = req.query.limit ?? DEFAULT_ACTIVITY;
      const role = req.principal?.kind === 'admin' ? req.principal.role : 'viewer';
      const rows = await audit
        .selectFrom('audit_log')
        .selectAll()
        .where('action', 'not in', QUIET_ACTIONS)
        .orderBy('at', 'desc')
        .orderBy('id', 'desc')
        .limit(limit)
        .execute();
      const entries = rows.map(toEntry);
      const names = await targetNames(ctx, entries);
      const items: ActivityItem[] = entries.map((entry) => ({
        kind: 'audit',
        at: entry.at,
        entry,
        targetName: names.get(entry.target) ?? null,
      }));
      for (const apply of await applies.recent(limit)) items.push({ kind: 'apply', at: apply.at, apply });
      if (mayRead(role, 'compliance')) {
        for (const t of await ctx.compliance.listTripwires({ limit })) {
          items.push({
            kind: 'tripwire',
            at: t.at,
            hostId: t.hostId,
            hostname: t.hostname,
            cve: t.cve,
            comm: t.comm,
            pid: t.pid,
            level: t.level,
          });
        }
      }
      items.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
      return { items: items.slice(0, limit) };
    },
  );

  api.get(
    '/dashboard/hosts/:id/history',
    { schema: { params: HostParams }, config: { answer: HostHistory }, onRequest: guard(ctx.auth, READ_ROLE.fleet) },
    async (req): Promise<HostHistory> => {
      const { id } = req.params;
      if ((await ctx.hosts.get(id)) === undefined) throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${id}`);
      const changes = await audit
        .selectFrom('audit_log')
        .selectAll()
        .where('target', '=', id)
        .orderBy('at', 'desc')
        .orderBy('id', 'desc')
        .limit(MAX_HOST_CHANGES)
        .execute();
      return { hostId: id, applies: await applies.forHost(id, MAX_APPLY_HISTORY), changes: changes.map(toEntry) };
    },
  );
}

function toEntry(r: AuditDb['audit_log']): AuditEntry {
  return {
    id: r.id,
    at: r.at,
    actor: { id: r.actor_id, name: r.actor_name, role: r.actor_role },
    ip: r.ip,
    action: r.action,
    target: r.target,
    details: JSON.parse(r.details_json) as unknown,
  };
}

/** Readable names for audit targets that are ids: API tokens, registration keys, hosts. */
async function targetNames(ctx: RouteContext, entries: readonly AuditEntry[]): Promise<Map<string, string>> {
  const names = new Map<string, string>();
  const kinds = new Set(entries.map((e) => e.action.split('.')[0]));
  if (kinds.has('token') || kinds.has('session')) {
    for (const t of await ctx.fleet.tokens.list()) names.set(t.id, t.name);
  }
  if (kinds.has('registration-key')) {
    for (const k of await ctx.fleet.registrationKeys.list()) names.set(k.id, k.name);
  }
  for (const e of entries) {
    if (!e.action.startsWith('host.') || names.has(e.target)) continue;
    const h = await ctx.hosts.get(e.target);
    if (h !== undefined) names.set(h.id, h.hostname);
  }
  return names;
}
