import { Type } from 'typebox';
import {
  KernelId,
  LivegraftError,
  modinfoValue,
  moduleNameFor,
  LatestResponse,
  PatchLevel,
  PatchRecord,
  PublishRequest,
  type PatchManifest,
} from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';
import { toPatchRecord } from '../db/patches.ts';
import { actorOf } from './actor.ts';
import { assertLivepatchModule } from './modules.ts';

const KernelParams = Type.Object({ kernelId: KernelId }, { additionalProperties: false });
const LevelParams = Type.Object({ kernelId: KernelId, level: PatchLevel }, { additionalProperties: false });
const ListQuery = Type.Object({ kernelId: Type.Optional(KernelId) }, { additionalProperties: false });

function mismatch(what: string, manifestSays: unknown, actual: unknown): LivegraftError {
  return new LivegraftError(
    'MANIFEST_MISMATCH',
    `${what}: the manifest says ${String(manifestSays)}, but ${String(actual)}`,
    {
      details: { field: what, manifest: manifestSays, actual },
    },
  );
}

/** Checks that a manifest names its module correctly and that the stored module agrees with it. */
export async function checkManifest(ctx: Pick<RouteContext, 'modules'>, m: PatchManifest): Promise<void> {
  const expectedName = moduleNameFor(m.kernel.id, m.level);
  if (m.name !== expectedName) throw mismatch('name', m.name, `kernel and level give ${expectedName}`);
  if (m.module.file !== `${m.name}.ko`) throw mismatch('module.file', m.module.file, `the name gives ${m.name}.ko`);

  const size = await ctx.modules.size(m.module.sha256);
  if (size === undefined) {
    throw new LivegraftError(
      'MODULE_NOT_UPLOADED',
      `module ${m.module.sha256} is not on the server; upload it (PUT /api/v1/modules/<sha256>) before publishing its manifest`,
    );
  }
  if (size !== m.module.size) {
    throw new LivegraftError(
      'MODULE_SIZE_MISMATCH',
      `the manifest says ${m.module.size} bytes, the stored module has ${size}`,
      {
        details: { manifest: m.module.size, stored: size },
      },
    );
  }
  const bytes = await ctx.modules.read(m.module.sha256);
  if (bytes === undefined) throw new LivegraftError('MODULE_NOT_UPLOADED', `module ${m.module.sha256} vanished`);
  const info = assertLivepatchModule(bytes);
  const level = modinfoValue(info, 'livegraft_level');
  if (level !== String(m.level))
    throw mismatch('level', m.level, `the module's livegraft_level is ${level ?? 'missing'}`);
  const kernelId = modinfoValue(info, 'livegraft_kernel_id');
  if (kernelId !== m.kernel.id) {
    throw mismatch('kernel.id', m.kernel.id, `the module's livegraft_kernel_id is ${kernelId ?? 'missing'}`);
  }
  // The agent refuses a module whose vermagic is not its kernel's; one that lies must never be signed.
  const vermagic = modinfoValue(info, 'vermagic')?.trim();
  if (vermagic !== m.kernel.vermagic.trim()) {
    throw mismatch('kernel.vermagic', m.kernel.vermagic.trim(), `the module's vermagic is ${vermagic ?? 'missing'}`);
  }
  if (!`${vermagic} `.startsWith(`${m.kernel.release} `)) {
    throw mismatch('kernel.release', m.kernel.release, `the module's vermagic is ${vermagic}`);
  }
  // modpost records the module name; older toolchains may not, so only a present one must agree.
  const name = modinfoValue(info, 'name');
  if (name !== undefined && name !== m.name) throw mismatch('name', m.name, `the module's modinfo name is ${name}`);
}

export function patchRoutes(app: App, ctx: RouteContext): void {
  app.post(
    '/patches',
    { schema: { body: PublishRequest }, config: { answer: PatchRecord }, onRequest: guard(ctx.auth, 'operator') },
    async (req, reply): Promise<PatchRecord> => {
      const { manifest, publish = false } = req.body;
      await checkManifest(ctx, manifest);
      const now = ctx.clock();
      const outcome = await ctx.patches.insert(manifest, now, publish);
      if (!outcome.sameManifest) {
        throw new LivegraftError(
          'LEVEL_EXISTS',
          `level ${manifest.level} of kernel ${manifest.kernel.id} already exists with a different manifest; levels are immutable, build the next level instead`,
          {
            details: { kernelId: manifest.kernel.id, level: manifest.level, existingSha256: outcome.row.module_sha256 },
          },
        );
      }
      let record = toPatchRecord(outcome.row);
      if (publish && !record.published) {
        record = (await ctx.patches.publish(manifest.kernel.id, manifest.level, now)) ?? record;
      }
      // Signed before answering, so a published level is a TUF target by the time the publisher hears back.
      if (record.published) await ctx.tuf.sync();
      const actor = actorOf(req);
      if (outcome.inserted) await ctx.fleet.record(actor, 'patch.record', record.kernelId, { level: record.level });
      if (record.published) await ctx.fleet.onPublished(record.kernelId, record.level, actor);
      req.log.info({ kernelId: record.kernelId, level: record.level, published: record.published }, 'patch recorded');
      void reply.status(outcome.inserted ? 201 : 200);
      return record;
    },
  );

  app.post(
    '/kernels/:kernelId/levels/:level/publish',
    { schema: { params: LevelParams }, config: { answer: PatchRecord }, onRequest: guard(ctx.auth, 'operator') },
    async (req): Promise<PatchRecord> => {
      const { kernelId, level } = req.params;
      const record = await ctx.patches.publish(kernelId, level, ctx.clock());
      if (record === undefined) throw new LivegraftError('LEVEL_NOT_FOUND', `kernel ${kernelId} has no level ${level}`);
      await ctx.tuf.sync();
      await ctx.fleet.onPublished(kernelId, level, actorOf(req));
      req.log.info({ kernelId, level }, 'patch published');
      return record;
    },
  );

  app.get(
    '/patches',
    {
      schema: { querystring: ListQuery },
      config: { answer: Type.Array(PatchRecord) },
      onRequest: guard(ctx.auth, 'viewer'),
    },
    async (req): Promise<PatchRecord[]> => ctx.patches.list(req.query.kernelId),
  );

  app.get(
    '/kernels/:kernelId/latest',
    {
      schema: { params: KernelParams },
      config: { answer: LatestResponse },
      onRequest: guard(ctx.auth, 'host-or-admin'),
    },
    async (req): Promise<LatestResponse> => {
      const latest = await ctx.patches.latestPublished(req.params.kernelId);
      if (latest === undefined) {
        throw new LivegraftError('KERNEL_UNSUPPORTED', `no published patch for kernel ${req.params.kernelId}`);
      }
      return latest;
    },
  );

  app.get(
    '/kernels/:kernelId/levels/:level',
    {
      schema: { params: LevelParams },
      config: { answer: LatestResponse },
      onRequest: guard(ctx.auth, 'host-or-admin'),
    },
    async (req): Promise<LatestResponse> => {
      const { kernelId, level } = req.params;
      const found = await ctx.patches.publishedLevel(kernelId, level);
      if (found === undefined)
        throw new LivegraftError('LEVEL_NOT_FOUND', `kernel ${kernelId} has no published level ${level}`);
      return found;
    },
  );
}
