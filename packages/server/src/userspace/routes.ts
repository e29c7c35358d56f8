import { createHash } from 'node:crypto';
import { Type } from 'typebox';
import {
  BuildId,
  HostUserspaceLibrary,
  LivegraftError,
  MAX_USERSPACE_OBJECT_BYTES,
  TUF_TARGETS_PATH,
  UserspaceLevelRecord,
  UserspacePublishRequest,
  type UserspaceManifest,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import type { ModuleStore } from '../store.ts';
import { actorOf } from '../routes/actor.ts';
import type { UserspaceRepository } from './repository.ts';
import { userspaceFeedRoutes } from './feed-routes.ts';

const Level = Type.Integer({ minimum: 1, maximum: 1_000_000 });
const LevelParams = Type.Object({ buildId: BuildId, level: Level }, { additionalProperties: false });
const ListQuery = Type.Object({ buildId: Type.Optional(BuildId) }, { additionalProperties: false });
const HaltBody = Type.Object(
  { reason: Type.String({ minLength: 1, maxLength: 2000 }) },
  { additionalProperties: false },
);
const HostParams = Type.Object({ id: Type.String({ maxLength: 64 }) }, { additionalProperties: false });
const PinParams = Type.Object(
  { id: Type.String({ maxLength: 64 }), buildId: BuildId },
  { additionalProperties: false },
);
const PinBody = Type.Object(
  { level: Type.Integer({ minimum: 0, maximum: 1_000_000 }) },
  { additionalProperties: false },
);
const TargetParams = Type.Object(
  { buildId: BuildId, level: Level, file: Type.String({ maxLength: 200 }) },
  { additionalProperties: false },
);
const OK = Type.Object({ ok: Type.Boolean() });

export type UserspaceRouteContext = RouteContext & { userspace: UserspaceRepository };

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 2, 1]);
const ET_REL = 1;
const EM_X86_64 = 62;

/** The code object must be what the manifest says: its hash and size, an x86-64 relocatable object. */
function checkObject(m: UserspaceManifest, object: Buffer): void {
  const sha = createHash('sha256').update(object).digest('hex');
  if (sha !== m.code.sha256 || object.length !== m.code.size)
    throw new LivegraftError(
      'MANIFEST_MISMATCH',
      `code.sha256/size: the manifest says ${m.code.sha256} (${m.code.size} bytes), the object is ${sha} (${object.length} bytes)`,
    );
  if (
    object.length < 64 ||
    !object.subarray(0, 6).equals(ELF_MAGIC) ||
    object.readUInt16LE(16) !== ET_REL ||
    object.readUInt16LE(18) !== EM_X86_64
  )
    throw new LivegraftError('MANIFEST_MISMATCH', 'the code object is not an ELF64 x86-64 relocatable object');
  for (const f of m.functions)
    if (f.codeOffset >= m.code.textSize)
      throw new LivegraftError('MANIFEST_MISMATCH', `${f.symbol} enters outside the code (${f.codeOffset})`);
}

/** Recording, publishing, halting and pinning user-space levels; feeds and promotion; a host's libraries. */
export function userspaceRoutes(app: App, ctx: UserspaceRouteContext): void {
  userspaceFeedRoutes(app, ctx);
  app.post(
    '/userspace/levels',
    {
      schema: { body: UserspacePublishRequest },
      config: { answer: UserspaceLevelRecord },
      bodyLimit: Math.ceil(MAX_USERSPACE_OBJECT_BYTES / 3) * 4 + 1024 * 1024,
      onRequest: guard(ctx.auth, 'operator'),
    },
    async (req, reply): Promise<UserspaceLevelRecord> => {
      const { manifest, publish = false } = req.body;
      const object = Buffer.from(req.body.object, 'base64');
      checkObject(manifest, object);
      const now = ctx.clock();
      await ctx.modules.put(manifest.code.sha256, object);
      const outcome = await ctx.userspace.insert(manifest, now);
      if (!outcome.same)
        throw new LivegraftError(
          'LEVEL_EXISTS',
          `level ${manifest.level} of library build ${manifest.library.buildId} already exists with other code; levels are immutable, build the next level instead`,
        );
      const { buildId } = manifest.library;
      let record = (await ctx.userspace.list(buildId)).find((r) => r.level === manifest.level);
      if (publish && record?.published === false) record = await ctx.userspace.publish(buildId, manifest.level, now);
      if (record === undefined) throw new LivegraftError('LEVEL_NOT_FOUND', 'the level vanished');
      if (record.published) await ctx.tuf.sync();
      if (outcome.inserted)
        await ctx.fleet.record(actorOf(req), 'userspace.record', buildId, {
          level: manifest.level,
          soname: record.soname,
        });
      void reply.status(outcome.inserted ? 201 : 200);
      return record;
    },
  );

  app.post(
    '/userspace/levels/:buildId/:level/publish',
    {
      schema: { params: LevelParams },
      config: { answer: UserspaceLevelRecord },
      onRequest: guard(ctx.auth, 'operator'),
    },
    async (req): Promise<UserspaceLevelRecord> => {
      const { buildId, level } = req.params;
      const record = await ctx.userspace.publish(buildId, level, ctx.clock());
      if (record === undefined)
        throw new LivegraftError('LEVEL_NOT_FOUND', `library build ${buildId} has no level ${level}`);
      await ctx.tuf.sync();
      await ctx.fleet.record(actorOf(req), 'userspace.publish', buildId, { level });
      return record;
    },
  );

  app.get(
    '/userspace/levels',
    {
      schema: { querystring: ListQuery },
      config: { answer: Type.Array(UserspaceLevelRecord) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req): Promise<UserspaceLevelRecord[]> => ctx.userspace.list(req.query.buildId),
  );

  app.post(
    '/userspace/levels/:buildId/:level/halt',
    { schema: { params: LevelParams, body: HaltBody }, config: { answer: OK }, onRequest: guard(ctx.auth, 'operator') },
    async (req) => {
      const { buildId, level } = req.params;
      if ((await ctx.userspace.manifest(buildId, level)) === undefined)
        throw new LivegraftError('LEVEL_NOT_FOUND', `library build ${buildId} has no level ${level}`);
      await ctx.userspace.halt(buildId, level, req.body.reason, ctx.clock());
      await ctx.fleet.record(actorOf(req), 'userspace.halt', buildId, { level, reason: req.body.reason });
      return { ok: true };
    },
  );

  app.delete(
    '/userspace/levels/:buildId/:level/halt',
    { schema: { params: LevelParams }, config: { answer: OK }, onRequest: guard(ctx.auth, 'operator') },
    async (req) => {
      const { buildId, level } = req.params;
      const ok = await ctx.userspace.unhalt(buildId, level);
      if (ok) await ctx.fleet.record(actorOf(req), 'userspace.unhalt', buildId, { level });
      return { ok };
    },
  );

  app.put(
    '/hosts/:id/userspace-pins/:buildId',
    { schema: { params: PinParams, body: PinBody }, config: { answer: OK }, onRequest: guard(ctx.auth, 'operator') },
    async (req) => {
      const { id, buildId } = req.params;
      if ((await ctx.hosts.get(id)) === undefined) throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${id}`);
      const { level } = req.body;
      if (level > 0 && (await ctx.userspace.list(buildId)).find((r) => r.level === level && r.published) === undefined)
        throw new LivegraftError('LEVEL_NOT_FOUND', `library build ${buildId} has no published level ${level}`);
      await ctx.userspace.pin(id, buildId, level, ctx.clock());
      await ctx.fleet.record(actorOf(req), 'userspace.pin', id, { buildId, level });
      return { ok: true };
    },
  );

  app.delete(
    '/hosts/:id/userspace-pins/:buildId',
    { schema: { params: PinParams }, config: { answer: OK }, onRequest: guard(ctx.auth, 'operator') },
    async (req) => {
      const ok = await ctx.userspace.unpin(req.params.id, req.params.buildId);
      if (ok) await ctx.fleet.record(actorOf(req), 'userspace.unpin', req.params.id, { buildId: req.params.buildId });
      return { ok };
    },
  );

  app.get(
    '/hosts/:id/userspace',
    {
      schema: { params: HostParams },
      config: { answer: Type.Array(HostUserspaceLibrary) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req) => {
      if ((await ctx.hosts.get(req.params.id)) === undefined)
        throw new LivegraftError('HOST_NOT_FOUND', `no host with id ${req.params.id}`);
      return ctx.userspace.hostLibraries(req.params.id);
    },
  );
}

/** The code objects of published user-space levels, as TUF targets (consistent-snapshot names, no auth). */
export function userspaceTufRoutes(app: App, ctx: { userspace: UserspaceRepository; modules: ModuleStore }): void {
  app.get(
    `${TUF_TARGETS_PATH}/userspace/:buildId/:level/:file`,
    { schema: { params: TargetParams } },
    async (req, reply) => {
      const { buildId, level, file } = req.params;
      const sha256 = await ctx.userspace.publishedObject(buildId, level, file);
      if (sha256 === undefined)
        throw new LivegraftError('NOT_FOUND', `no published TUF target userspace/${buildId}/${level}/${file}`);
      const opened = await ctx.modules.open(sha256);
      if (opened === undefined)
        throw new LivegraftError('MODULE_NOT_FOUND', `object ${sha256} is missing from the store`);
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', opened.size)
        .header('cache-control', 'public, max-age=31536000, immutable')
        .send(opened.handle.createReadStream());
    },
  );
}
