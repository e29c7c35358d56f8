import { Type } from 'typebox';
import {
  CveId,
  LivegraftError,
  TripwireReport,
  type TripwireRecord,
  type TripwireReportResponse,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { ComplianceService } from '../compliance/service.ts';
import { MAX_TRIPWIRE_LIST } from '../compliance/tripwires.ts';
import type { App, RouteContext } from '../context.ts';
import { tripwireRefusedCounter } from '../compliance/tripwire-guard.ts';
import { RateLimiter } from '../rate-limit.ts';
import { HostParams } from './exposure.ts';

const ListQuery = Type.Object(
  {
    host: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    cve: Type.Optional(CveId),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_TRIPWIRE_LIST })),
  },
  { additionalProperties: false },
);

/** The CVEs of the level the host last reported applied (empty when none is). */
async function appliedCves(ctx: RouteContext, hostId: string): Promise<Set<string>> {
  const host = await ctx.hosts.get(hostId);
  if (host === undefined || host.appliedLevel <= 0) return new Set();
  const level = await ctx.patches.level(host.kernelId, host.appliedLevel);
  if (level === undefined) return new Set();
  const m = level.manifest;
  return new Set([...m.cves, ...m.fixes.flatMap((f) => f.cves)]);
}

/** Known-exploit detection: agents report LG_TRIPWIRE hits; admins list them. */
export function tripwireRoutes(app: App, ctx: RouteContext, compliance: ComplianceService): void {
  const limits = compliance.tripwireLimits;
  // Keyed on the host, not the address: many hosts share a NAT, one host token may not flood. Per server node.
  const perHost = new RateLimiter({ burst: limits.reportsBurst, perMinute: limits.reportsPerMinute });
  const refused = tripwireRefusedCounter(compliance.metrics.registry);
  app.post(
    '/hosts/tripwire',
    { schema: { body: TripwireReport }, onRequest: guard(ctx.auth, 'host') },
    async (req, reply): Promise<TripwireReportResponse> => {
      const who = req.principal;
      if (who?.kind !== 'host') throw new LivegraftError('FORBIDDEN', 'tripwire reports need a host token');
      const wait = perHost.take(who.hostId);
      if (wait > 0) {
        void reply.header('retry-after', String(wait));
        throw new LivegraftError('RATE_LIMITED', `too many tripwire reports from this host; retry in ${wait} s`, {
          details: { retryAfterSec: wait },
        });
      }
      // A tripwire fires only in a fix the host runs: an event for any other CVE is forged or broken.
      const carried = await appliedCves(ctx, who.hostId);
      const events = req.body.events.filter((e) => carried.has(e.cve));
      const suspicious = req.body.events.length - events.length;
      if (suspicious > 0) {
        refused.inc({ reason: 'not_applied' }, suspicious);
        req.log.warn(
          { hostId: who.hostId, suspicious, cves: [...new Set(req.body.events.map((e) => e.cve))].slice(0, 20) },
          "tripwire: events for CVEs the host's applied level does not carry were refused (suspicious)",
        );
      }
      const fresh = events.length === 0 ? [] : await compliance.recordTripwires(who.hostId, events);
      return { accepted: fresh.length };
    },
  );

  app.get(
    '/tripwires',
    { schema: { querystring: ListQuery }, onRequest: guard(ctx.auth, 'viewer') },
    async (req): Promise<TripwireRecord[]> =>
      compliance.listTripwires({ hostId: req.query.host, cve: req.query.cve, limit: req.query.limit }),
  );

  app.get(
    '/hosts/:id/tripwires',
    {
      schema: { params: HostParams, querystring: Type.Omit(ListQuery, ['host']) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req): Promise<TripwireRecord[]> =>
      compliance.listTripwires({ hostId: req.params.id, cve: req.query.cve, limit: req.query.limit }),
  );
}
