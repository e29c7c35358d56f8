import { Type, type Static } from 'typebox';
import { CveId, FixCommit, FixId, CSymbol, KernelObject } from './fix.ts';
import { KernelId } from './kernel.ts';
import { validator } from './validate.ts';

export const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' });
export const ModuleName = Type.String({ pattern: '^[a-z0-9_]{1,55}$' });
export const PatchLevel = Type.Integer({ minimum: 1, maximum: 1_000_000 });

export const ManifestFix = Type.Object(
  {
    id: FixId,
    title: Type.String({ maxLength: 200 }),
    cves: Type.Array(CveId),
    functions: Type.Array(
      Type.Object(
        {
          name: CSymbol,
          object: KernelObject,
          /** 1-based position among same-named symbols of that object; absent or 0 for a unique name. */
          sympos: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
        },
        { additionalProperties: false },
      ),
    ),
    /** How the fix was made: compiled from upstream patches, or hand-written C. */
    kind: Type.Optional(Type.Union([Type.Literal('patch'), Type.Literal('source')])),
    /** The upstream commit(s) the fix carries. */
    commits: Type.Optional(Type.Array(FixCommit, { maxItems: 20 })),
  },
  { additionalProperties: false },
);
export type ManifestFix = Static<typeof ManifestFix>;

/** A fix given to the build that is not in the module, and why (e.g. already fixed in this kernel build). */
export const ManifestSkippedFix = Type.Object(
  {
    id: FixId,
    cves: Type.Array(CveId),
    reason: Type.String({ maxLength: 500 }),
  },
  { additionalProperties: false },
);

/**
 * The manifest written beside each built module. It is the contract between
 * the builder, the server and the agent: the agent refuses a module whose
 * bytes, name or target kernel disagree with it.
 */
export const PatchManifest = Type.Object(
  {
    schema: Type.Literal(1),
    name: ModuleName,
    level: PatchLevel,
    replace: Type.Literal(true),
    kernel: Type.Object(
      {
        id: KernelId,
        release: Type.String({ minLength: 1, maxLength: 128 }),
        vermagic: Type.String({ minLength: 1, maxLength: 256 }),
      },
      { additionalProperties: false },
    ),
    fixes: Type.Array(ManifestFix, { minItems: 1, maxItems: 500 }),
    cves: Type.Array(CveId),
    /** Fixes that were asked for but not built into this module, with the reason. */
    skipped: Type.Optional(Type.Array(ManifestSkippedFix, { maxItems: 500 })),
    module: Type.Object(
      {
        file: Type.String({ pattern: '^[a-z0-9_]{1,55}\\.ko$' }),
        sha256: Sha256,
        size: Type.Integer({ minimum: 1, maximum: 64 * 1024 * 1024 }),
      },
      { additionalProperties: false },
    ),
    builtAt: Type.String({ format: 'date-time' }),
    builder: Type.String({ maxLength: 64 }),
  },
  { additionalProperties: false },
);
export type PatchManifest = Static<typeof PatchManifest>;
export const manifestValidator = validator(PatchManifest, 'patch manifest');

/** Largest module the server accepts and the agent downloads. */
export const MAX_MODULE_BYTES = 64 * 1024 * 1024;
