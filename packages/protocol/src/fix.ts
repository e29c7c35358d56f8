import { Type, type Static } from 'typebox';
import { validator } from './validate.ts';

export const CveId = Type.String({ pattern: '^CVE-[0-9]{4}-[0-9]{4,7}$' });
export const FixId = Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$' });
/** A C identifier as the kernel's kallsyms knows it. */
export const CSymbol = Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.]{0,127}$' });
/** `vmlinux` or a module name. */
export const KernelObject = Type.String({ pattern: '^(vmlinux|[a-z0-9_-]{1,55})$' });

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

/** fix.json: one fix, a directory of C sources holding replacement functions. */
export const FixSpec = Type.Object(
  {
    id: FixId,
    title: Type.String({ minLength: 1, maxLength: 200 }),
    description: Type.Optional(Type.String({ maxLength: 4000 })),
    cves: Type.Array(CveId, { maxItems: 200, uniqueItems: true }),
    functions: Type.Array(FixFunction, { minItems: 1, maxItems: 200 }),
    symbols: Type.Optional(Type.Array(CSymbol, { maxItems: 200, uniqueItems: true })),
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
