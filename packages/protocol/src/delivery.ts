import { Type, type Static } from 'typebox';
import { PatchManifest } from './manifest.ts';
import { ValidationSummary } from './pipeline.ts';
import { validator } from './validate.ts';

/**
 * Signed delivery (TUF). The server keeps a TUF repository whose targets are
 * the patch modules; each target's `custom.livegraft` carries the module's
 * full manifest, so one signature covers the bytes (hashes, length) and the
 * identity (kernel id, level, name, fixes, CVEs).
 *
 * Layout, served by the server and by any static mirror:
 *   <base>/tuf/metadata/{N.root.json, timestamp.json, N.snapshot.json, N.targets.json}
 *   <base>/tuf/targets/<kernelId>/<level>/<sha256>.<name>.ko   (consistent snapshots)
 */
export const TUF_METADATA_PATH = '/tuf/metadata';
export const TUF_TARGETS_PATH = '/tuf/targets';

/** The TUF target path (without hash prefix) of a patch level. */
export function tufTargetPath(kernelId: string, level: number, name: string): string {
  return `${kernelId}/${level}/${name}.ko`;
}

export const TargetCustom = Type.Object({
  livegraft: Type.Object({
    manifest: PatchManifest,
    /** Levels the build pipeline released: the VM validation that proved them on their exact kernel build. */
    validation: Type.Optional(ValidationSummary),
  }),
});
export type TargetCustom = Static<typeof TargetCustom>;
export const targetCustomValidator = validator(TargetCustom, 'TUF target custom metadata');

/**
 * What the server wants a host to run (its feed's level, a pin, or a
 * fleet-wide rollback). The agent still verifies everything through TUF; a
 * lower level than the one applied is only taken when `allowDowngrade` is set
 * because an operator asked for a rollback.
 */
export const DesiredLevel = Type.Object({
  level: Type.Integer({ minimum: 0, description: '0 = no patch (unload)' }),
  reason: Type.Union([Type.Literal('feed'), Type.Literal('pin'), Type.Literal('rollback'), Type.Literal('manual')]),
  allowDowngrade: Type.Boolean(),
  feed: Type.Optional(Type.String()),
  /**
   * Ignored fixes (the host's ignore-list) in the level the host would
   * otherwise get; present when they held it below that level.
   */
  ignoredFixes: Type.Optional(Type.Array(Type.String())),
  /**
   * Ignored fixes in the level the host already runs. The server does not
   * take them away by itself; a host rollback or pin does.
   */
  ignoredRunning: Type.Optional(Type.Array(Type.String())),
});
export type DesiredLevel = Static<typeof DesiredLevel>;
