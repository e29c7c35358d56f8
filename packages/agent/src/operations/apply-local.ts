import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LivegraftError, manifestValidator, parseJson, type PatchManifest } from '@livegraft/protocol';
import { loadConfigIfPresent } from '../state/config.ts';
import { verifyModuleFile } from '../kernel/verify.ts';
import { applyLevel } from './apply-level.ts';
import { assertEnabled, assertNoAttention } from './attention.ts';
import type { AgentContext, OpOutcome } from './context.ts';
import type { OperationRunner } from './runner.ts';

/** A manifest lists at most 500 fixes; anything near this size is not one. */
const MAX_MANIFEST_BYTES = 1024 * 1024;

function readManifestFile(path: string): PatchManifest {
  let text: string;
  try {
    if (statSync(path).size > MAX_MANIFEST_BYTES) {
      throw new LivegraftError('MANIFEST_INVALID', `${path} is larger than ${MAX_MANIFEST_BYTES} bytes`);
    }
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if (err instanceof LivegraftError) throw err;
    throw new LivegraftError('MANIFEST_UNREADABLE', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  return parseJson(manifestValidator, text, `manifest ${path}`);
}

/**
 * Applies a module from a local manifest (air-gapped hosts, or a module
 * fetched by other means). The module file named in the manifest must sit
 * beside it. The given file itself is verified first, then cached, then
 * applied; going below the applied (or highest) level needs `allowDowngrade`.
 */
export function applyLocal(
  ctx: AgentContext,
  runner: OperationRunner,
  manifestPath: string,
  opts: { allowDowngrade?: boolean } = {},
): Promise<OpOutcome> {
  const config = loadConfigIfPresent(ctx.deps.configPath);
  const manifest = readManifestFile(manifestPath);
  const modulePath = join(dirname(manifestPath), manifest.module.file);
  return runner.mutating(config, async () => {
    assertEnabled(ctx, config);
    const state = ctx.readState();
    assertNoAttention(state);
    const kernel = ctx.identity();
    const applied = ctx.applied(kernel).level;
    const highest = Math.max(state.highestLevel?.[kernel.id] ?? 0, applied);
    const downgrade = manifest.level < applied || manifest.level < highest;
    const target = { level: manifest.level, sha256: manifest.module.sha256, downgrade };
    return applyLevel(ctx, 'apply', config, kernel, target, async () => {
      verifyModuleFile(manifest, modulePath, kernel);
      const cached = await ctx.cache.ensure(manifest, kernel, (tmp) => {
        copyFileSync(modulePath, tmp);
        return Promise.resolve();
      });
      if (downgrade && opts.allowDowngrade !== true) {
        throw new LivegraftError(
          'DOWNGRADE_REFUSED',
          `${manifestPath} is level ${manifest.level}, below the ${manifest.level < applied ? `applied level ${applied}` : `highest level this host ran (${highest})`}; ` +
            'use rollback, or pass --allow-downgrade',
        );
      }
      return cached;
    });
  });
}
