import { Type, type Static } from 'typebox';
import { validator } from './validate.ts';

export const CveId = Type.String({ pattern: '^CVE-[0-9]{4}-[0-9]{4,7}$' });
export const FixId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' });
/** A C identifier as the kernel's kallsyms knows it. */
export const CSymbol = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.]{0,127}$' });
/** `vmlinux` or a module name. */
export const KernelObject = Type.String({ pattern: '^(vmlinux|[a-z0-9_-]{1,55})$' });
/**
 * A kernel symbol a hand-written fix reaches through LG_SYMBOL: `name` (a vmlinux symbol, unique
 * there), `name,N` (the N-th of that name in kallsyms order) or `module:name[,N]` (a symbol of a
 * module the fix patches).
 */
export const FixSymbolRef = Type.String({
  pattern: '^([a-z0-9_-]{1,55}:)?[A-Za-z_][A-Za-z0-9_.]{0,127}(,[1-9][0-9]{0,3})?$',
});

export const FixFunction = Type.Object(
  {
    name: CSymbol,
    object: KernelObject,
    replacement: CSymbol,
    sympos: Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 })),
  },
  { additionalProperties: false },
);
export type FixFunction = Static<typeof FixFunction>;

/** A git commit id, abbreviated (12+) or full. */
export const CommitId = Type.String({ pattern: '^[0-9a-f]{12,40}$' });
/** The upstream commit a fix comes from, as a patch header or fix.json names it. */
export const FixCommit = Type.Object(
  {
    id: Type.Optional(CommitId),
    subject: Type.String({ minLength: 1, maxLength: 300 }),
  },
  { additionalProperties: false },
);
export type FixCommit = Static<typeof FixCommit>;

/** A CVSS score as the CVE data gives it. */
export const CvssScore = Type.Object(
  {
    score: Type.Number({ minimum: 0, maximum: 10 }),
    vector: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
);

/** A patch file inside the fix directory: `git format-patch` or `diff -u` output against the kernel tree. */
export const PatchFileName = Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$' });

/** A kernel stable version such as 6.1.177. */
export const KernelVersion = Type.String({ pattern: '^[0-9]+\\.[0-9]+(\\.[0-9]+)?$' });

/**
 * fix.json: one fix. Either `patches` (upstream diffs against the kernel tree,
 * which the builder compiles twice and diffs function by function) or
 * `functions` (hand-written replacement functions in C sources), never both.
 */
export const FixSpec = Type.Object(
  {
    id: FixId,
    title: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
    cves: Type.Array(CveId, { maxItems: 200, uniqueItems: true }),
    /** Unified diffs against the kernel source tree, applied in order. */
    patches: Type.Optional(Type.Array(PatchFileName, { minItems: 1, maxItems: 20, uniqueItems: true })),
    /**
     * Fixes this one builds on (e.g. one that adds a helper it calls): they must
     * come earlier in the same level, so their patches are applied first.
     */
    requires: Type.Optional(Type.Array(FixId, { maxItems: 20, uniqueItems: true })),
    /** The upstream commit(s); when absent they are read from the patches' headers. */
    commits: Type.Optional(Type.Array(FixCommit, { maxItems: 20 })),
    /** The first stable version of each branch carrying the fix, e.g. {"6.1": "6.1.177"}. */
    fixedIn: Type.Optional(Type.Record(Type.String({ pattern: '^[0-9]+\\.[0-9]+$' }), KernelVersion)),
    /** CVSS per CVE, from the CVE data. */
    cvss: Type.Optional(Type.Record(Type.String({ pattern: '^CVE-[0-9]{4}-[0-9]{4,7}$' }), CvssScore)),
    /** A program that shows the flaw: prints VULNERABLE or FIXED and exits 0 either way. */
    trigger: Type.Optional(
      Type.Object(
        {
          source: Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\\.c$' }),
          /** Who must run it: root, or an unprivileged uid. */
          runAs: Type.Optional(Type.Union([Type.Literal('root'), Type.Literal('user')])),
          /** What the guest needs, in words (e.g. a QEMU device). */
          needs: Type.Optional(Type.String({ maxLength: 400 })),
        },
        { additionalProperties: false },
      ),
    ),
    functions: Type.Optional(Type.Array(FixFunction, { minItems: 1, maxItems: 200 })),
    symbols: Type.Optional(Type.Array(FixSymbolRef, { maxItems: 200, uniqueItems: true })),
    sources: Type.Optional(
      Type.Array(Type.String({ pattern: '^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\\.c$' }), {
        minItems: 1,
        maxItems: 50,
        uniqueItems: true,
      }),
    ),
  },
  { additionalProperties: false },
);
export type FixSpec = Static<typeof FixSpec>;
export const fixSpecValidator = validator(FixSpec, 'fix.json');
