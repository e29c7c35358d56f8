import { Type } from 'typebox';
import { KernelId, LivegraftError, PatchLevel, TUF_METADATA_PATH, TUF_TARGETS_PATH } from '@livegraft/protocol';
import type { App } from '../context.ts';
import { ServedModules } from '../served-modules.ts';
import type { ModuleStore } from '../store.ts';
import type { TufRepository } from '../tuf/repository.ts';

const MetadataParams = Type.Object(
  { file: Type.String({ maxLength: 64, pattern: '^[0-9a-z.]+$' }) },
  { additionalProperties: false },
);
const TargetParams = Type.Object(
  { kernelId: KernelId, level: PatchLevel, file: Type.String({ maxLength: 160 }) },
  { additionalProperties: false },
);

export interface TufRouteContext {
  tuf: TufRepository;
  modules: ModuleStore;
}

/**
 * The TUF repository as static-looking files, the same layout a mirror or
 * an export bundle has. No authentication: everything here is signed, and
 * the client trusts the signatures, not this server (see docs/security.md).
 */
export function tufRoutes(app: App, ctx: TufRouteContext): void {
  const served = new ServedModules(ctx.modules);
  app.get(`${TUF_METADATA_PATH}/:file`, { schema: { params: MetadataParams } }, async (req, reply) => {
    const { file } = req.params;
    const text = await ctx.tuf.metadataFile(file);
    if (text === undefined) throw new LivegraftError('NOT_FOUND', `no TUF metadata ${file}`);
    // Versioned files never change; timestamp.json is the one moving pointer.
    const cache = file === 'timestamp.json' ? 'no-cache' : 'public, max-age=31536000, immutable';
    return reply.header('content-type', 'application/json').header('cache-control', cache).send(text);
  });

  app.get(`${TUF_TARGETS_PATH}/:kernelId/:level/:file`, { schema: { params: TargetParams } }, async (req, reply) => {
    const { kernelId, level, file } = req.params;
    const sha256 = await ctx.tuf.targetSha256(kernelId, level, file);
    if (sha256 === undefined) {
      throw new LivegraftError('NOT_FOUND', `no published TUF target ${kernelId}/${level}/${file}`);
    }
    const missing = (): LivegraftError =>
      new LivegraftError('MODULE_NOT_FOUND', `module ${sha256} is missing from the store`);
    const bytes = await served.get(sha256);
    if (bytes === undefined) throw missing();
    void reply
      .header('content-type', 'application/octet-stream')
      .header('cache-control', 'public, max-age=31536000, immutable');
    if (bytes !== 'stream') return reply.send(bytes);
    const opened = await ctx.modules.open(sha256);
    if (opened === undefined) throw missing();
    return reply.header('content-length', opened.size).send(opened.handle.createReadStream());
  });
}
