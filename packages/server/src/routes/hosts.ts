import { Type } from 'typebox';
import {
  CheckinRequest,
  EnrollRequest,
  FeedName,
  HostTag,
  KernelId,
  LivegraftError,
  liveFixedCves,
  type AppliedLevel,
  type CheckinResponse,
  type EnrollResponse,
  HostRecord,
  type PinRecord,
} from '@livegraft/protocol';
import { noStore } from '../answer-headers.ts';
import { guard, hashToken, sameHash } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { DEFAULT_FEED } from '../db/fleet-migration.ts';
import { fleetHostOf } from '../db/hosts.ts';
import { SYSTEM_ACTOR } from '../fleet/service.ts';

const HostParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false });
const HostQuery = Type.Object(
  { feed: Type.Optional(FeedName), tag: Type.Optional(HostTag), kernelId: Type.Optional(KernelId) },
  { additionalProperties: false },
);

/**
 * The check-in answer as JSON text. The manifest part is the same for every
 * host on a level, so its text is made once per manifest object (the fleet
 * cache hands out the same object until something changes).
 */
function checkinAnswerJson(answer: CheckinResponse, manifestText: WeakMap<object, string>): string {
  const { latest, ...rest } = answer;
  if (latest === null) return JSON.stringify(answer);
  let text = manifestText.get(latest);
  if (text === undefined) {
    text = JSON.stringify(latest);
    manifestText.set(latest, text);
  }
  return `${JSON.stringify(rest).slice(0, -1)},"latest":${text}}`;
}

/** The default key enrols into the production feed; other keys carry their own feed and tags. */
async function enrolmentOf(
  ctx: RouteContext,
  key: string,
): Promise<{ feed: string; tags: string[]; keyId: string; keyName: string } | undefined> {
  const presented = hashToken(key);
  if (sameHash(presented, ctx.registrationKeyHash)) {
    return { feed: DEFAULT_FEED, tags: [], keyId: 'default', keyName: 'default registration key' };
  }
  const found = await ctx.fleet.registrationKeys.findLiveByHash(presented);
  if (found === undefined || !sameHash(presented, found.keyHash)) return undefined;
  return { feed: found.feed, tags: found.tags, keyId: found.id, keyName: found.name };
}

export function hostRoutes(app: App, ctx: RouteContext): void {
  const manifestText = new WeakMap<object, string>();
  const enrollLimit = ctx.enrollLimit.hook();
  app.post(
    '/hosts/enroll',
    { schema: { body: EnrollRequest }, onRequest: enrollLimit },
    async (req, reply): Promise<EnrollResponse> => {
      const { registrationKey, hostname, kernel, agentVersion } = req.body;
      const enrolment = await enrolmentOf(ctx, registrationKey);
      if (enrolment === undefined) {
        throw new LivegraftError(
          'REGISTRATION_KEY_INVALID',
          'the registration key is wrong; see <data-dir>/registration-key on the server',
        );
      }
      const hostId = ctx.randomId();
      const token = ctx.randomToken();
      const { feed, tags, keyId, keyName } = enrolment;
      await ctx.hosts.enroll(
        { id: hostId, hostname, tokenHash: hashToken(token), kernel, agentVersion, feed, tags },
        ctx.clock(),
      );
      await ctx.fleet.record(
        { id: keyId, name: keyName, role: 'registration-key', ip: req.ip },
        'host.enroll',
        hostId,
        {
          hostname,
          feed,
          tags,
          kernelId: kernel.id,
        },
      );
      req.log.info({ hostId, hostname, kernelId: kernel.id, feed }, 'host enrolled');
      noStore(reply);
      void reply.status(201);
      return { hostId, token, root: await ctx.tuf.rootJson() };
    },
  );

  app.post(
    '/hosts/checkin',
    { schema: { body: CheckinRequest }, onRequest: guard(ctx.auth, 'host') },
    async (req, reply): Promise<string> => {
      const who = req.principal;
      if (who?.kind !== 'host') throw new LivegraftError('FORBIDDEN', 'check-in needs a host token');
      const started = process.hrtime.bigint();
      const report = req.body;
      const before = await ctx.hosts.checkin(who.hostId, report, ctx.clock());
      const host = before?.host;
      if (before === undefined || host === undefined)
        throw new LivegraftError('AUTH_INVALID', 'the host token was revoked');
      const newApply = report.lastApply !== undefined && report.lastApply.at !== before.previousApplyAt;
      if (newApply && report.lastApply !== undefined) ctx.metrics.countApply(report.lastApply);
      await ctx.compliance.recordCheckin(who.hostId, report, ctx.clock());
      const halts = await ctx.fleet.reviewCheckin(who.hostId, report, before);
      const userspace = await ctx.userspace?.checkin(
        host,
        report.userspace ?? [],
        ctx.clock(),
        (a, t, d) => ctx.fleet.record(SYSTEM_ACTOR, a, t, d),
        before.userspaceOffer,
      );
      const desired = (await ctx.fleet.desiredFor([host])).get(host.id) ?? null;
      const latest = await ctx.fleet.manifestFor(host.kernelId, desired);
      const supported = latest !== null || (await ctx.patches.latestPublished(report.kernel.id)) !== undefined;
      ctx.push.noteDesired(host, desired);
      if (newApply || before.previousLevel !== report.appliedLevel || halts.length > 0) {
        // Promotion rules that count hosts may now hold; the answer does not wait for them.
        ctx.fleet.checkPromotionsSoon(host.feed, (err) => req.log.error({ err }, 'promotion check failed'));
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      ctx.metrics.checkinSeconds.observe({ outcome: desired === null ? 'none' : desired.reason }, seconds);
      const answer: CheckinResponse = {
        kernelSupported: supported,
        latest,
        checkinIntervalSec: ctx.config.checkinIntervalSec,
        ...(desired === null ? {} : { desired }),
        ...(userspace === undefined || userspace.length === 0 ? {} : { userspace }),
      };
      void reply.type('application/json; charset=utf-8');
      return checkinAnswerJson(answer, manifestText);
    },
  );

  app.get(
    '/hosts',
    {
      schema: { querystring: HostQuery },
      config: { answer: Type.Array(HostRecord) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req): Promise<HostRecord[]> => withFleet(ctx, await ctx.hosts.list(req.query)),
  );

  app.get(
    '/hosts/:id',
    { schema: { params: HostParams }, config: { answer: HostRecord }, onRequest: guard(ctx.auth, 'viewer') },
    async (req): Promise<HostRecord> => {
      const host = await ctx.hosts.get(req.params.id);
      if (host === undefined) throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${req.params.id}`);
      const [withDesired] = await withFleet(ctx, [host]);
      return { ...(withDesired ?? host), applied: await appliedLevel(ctx, host) };
    },
  );
}

/** The fixes of the level a host runs, from its stored manifest. */
async function appliedLevel(ctx: RouteContext, host: HostRecord): Promise<AppliedLevel | null> {
  if (host.appliedLevel <= 0) return null;
  const found = await ctx.patches.level(host.kernelId, host.appliedLevel);
  if (found === undefined) return null;
  const { record, manifest } = found;
  return {
    level: record.level,
    name: record.name,
    published: record.published,
    cves: liveFixedCves(manifest),
    fixes: record.fixes,
    skipped: record.skipped,
  };
}

/** Adds each host's pins and desired level (one snapshot for the whole list). */
async function withFleet(ctx: RouteContext, hosts: HostRecord[]): Promise<HostRecord[]> {
  const fleetHosts = hosts.map(fleetHostOf);
  const desired = await ctx.fleet.desiredFor(fleetHosts);
  const pins = await ctx.fleet.pins.list();
  // Every pin that bears on the host: its own, its tags', its feed's.
  const bears = (h: HostRecord, p: PinRecord): boolean =>
    (p.kernelId === null || p.kernelId === h.kernelId) &&
    ((p.scope === 'host' && p.subject === h.id) ||
      (p.scope === 'tag' && (h.tags ?? []).includes(p.subject)) ||
      (p.scope === 'feed' && p.subject === h.feed));
  return hosts.map((h) => ({
    ...h,
    pins: pins.filter((p) => bears(h, p)),
    desired: h.revokedAt === null ? (desired.get(h.id) ?? null) : null,
  }));
}
