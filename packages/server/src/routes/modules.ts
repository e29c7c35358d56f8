import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { LivegraftError, MAX_MODULE_BYTES, modinfoValue, parseModinfo, Sha256 } from '@livegraft/protocol';
import { guard } from '../auth.ts';
import type { App, RouteContext } from '../context.ts';

const ModuleParams = Type.Object({ sha256: Sha256 }, { additionalProperties: false });

/** Answer of a module upload. */
export interface ModuleUploadResponse {
  sha256: string;
  size: number;
  /** False when the module was already stored (uploads are idempotent). */
  created: boolean;
}

/** Throws unless the bytes are an ELF kernel module that declares itself a livepatch. */
export function assertLivepatchModule(bytes: Uint8Array): Map<string, string[]> {
  const info = parseModinfo(bytes);
  if (modinfoValue(info, 'livepatch') !== 'Y') {
    throw new LivegraftError(
      'MODULE_NOT_LIVEPATCH',
      'the module has no MODULE_INFO(livepatch, "Y"); the kernel would load it as an ordinary module, refusing it',
    );
  }
  return info;
}

// Checked before the body is read, so a mislabelled 64 MiB upload is refused without parsing it as text.
async function requireOctetStream(req: FastifyRequest): Promise<void> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/octet-stream') {
    throw new LivegraftError(
      'UNSUPPORTED_MEDIA_TYPE',
      `send the module as Content-Type: application/octet-stream, not ${type === '' ? 'no content type' : type}`,
    );
  }
}

export function moduleRoutes(app: App, ctx: RouteContext): void {
  // Modules are raw bytes; only this route family parses them, and only up to the module size limit.
  app.addContentTypeParser(
    'application/octet-stream',
    { parseAs: 'buffer', bodyLimit: MAX_MODULE_BYTES },
    (_req, body, done) => done(null, body),
  );

  app.put(
    '/modules/:sha256',
    {
      schema: { params: ModuleParams },
      bodyLimit: MAX_MODULE_BYTES,
      onRequest: [guard(ctx.auth, 'operator'), requireOctetStream],
    },
    async (req, reply): Promise<ModuleUploadResponse> => {
      const { sha256 } = req.params;
      const bytes = req.body;
      if (!Buffer.isBuffer(bytes) || bytes.length === 0) {
        throw new LivegraftError(
          'MODULE_MALFORMED',
          'send the module bytes as the body, Content-Type: application/octet-stream',
        );
      }
      const actual = createHash('sha256').update(bytes).digest('hex');
      if (actual !== sha256) {
        throw new LivegraftError('MODULE_HASH_MISMATCH', `the body's sha256 is ${actual}, the URL says ${sha256}`, {
          details: { expected: sha256, actual },
        });
      }
      assertLivepatchModule(bytes);
      const created = await ctx.modules.put(sha256, bytes);
      req.log.info({ sha256, size: bytes.length, created }, 'module stored');
      void reply.status(created ? 201 : 200);
      return { sha256, size: bytes.length, created };
    },
  );

  app.get(
    '/modules/:sha256',
    { schema: { params: ModuleParams }, onRequest: guard(ctx.auth, 'host-or-admin') },
    async (req, reply) => {
      const { sha256 } = req.params;
      const opened = await ctx.modules.open(sha256);
      if (opened === undefined) throw new LivegraftError('MODULE_NOT_FOUND', `no module with sha256 ${sha256}`);
      // The stream closes the handle when it ends or errors.
      return reply
        .header('content-type', 'application/octet-stream')
        .header('content-length', opened.size)
        .header('etag', `"${sha256}"`)
        .header('cache-control', 'private, max-age=31536000, immutable')
        .send(opened.handle.createReadStream());
    },
  );
}
