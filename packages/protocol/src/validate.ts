import type { Static, TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { ValidationError, type FieldProblem } from './errors.ts';

/** A compiled schema check that throws a ValidationError naming each bad field. */
export interface Validator<T extends TSchema> {
  check(value: unknown): value is Static<T>;
  /** Returns the value typed, or throws ValidationError. */
  parse(value: unknown): Static<T>;
  problems(value: unknown): FieldProblem[];
}

/**
 * The values of the union of literals at or just above `schemaPath` (a
 * "#/properties/x/anyOf/2" pointer into `schema`), or undefined when that is
 * not a union of literals.
 */
function literalUnion(schema: TSchema, schemaPath: string): unknown[] | undefined {
  const parts = schemaPath
    .replace(/^#\/?/, '')
    .split('/')
    .filter((p) => p !== '');
  if (/^\d+$/.test(parts.at(-1) ?? '') && parts.at(-2) === 'anyOf') parts.splice(-2);
  let node: unknown = schema;
  for (const p of parts) {
    if (typeof node !== 'object' || node === null) return undefined;
    node = (node as Record<string, unknown>)[p.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  const anyOf = (node as { anyOf?: unknown } | undefined)?.anyOf;
  if (!Array.isArray(anyOf) || anyOf.length === 0) return undefined;
  const values: unknown[] = [];
  for (const member of anyOf) {
    if (typeof member !== 'object' || member === null || !('const' in member)) return undefined;
    values.push((member as { const: unknown }).const);
  }
  return values;
}

export function validator<T extends TSchema>(schema: T, what: string): Validator<T> {
  const compiled = Compile(schema);
  const problems = (value: unknown): FieldProblem[] => {
    const seen = new Set<string>();
    const out: FieldProblem[] = [];
    for (const e of compiled.Errors(value)) {
      // additionalProperties reports twice (once as "schema is false"); keep the readable one.
      if (e.keyword === 'boolean') continue;
      let path = e.instancePath;
      let message = e.message;
      // A union of literals fails once per literal (and once more as "anyOf"): say once which values it takes.
      const values = e.keyword === 'const' || e.keyword === 'anyOf' ? literalUnion(schema, e.schemaPath) : undefined;
      if (values !== undefined) message = `must be one of ${values.map((v) => JSON.stringify(v)).join(', ')}`;
      if (e.keyword === 'additionalProperties') {
        const extra = (e.params as { additionalProperties?: string[] }).additionalProperties ?? [];
        path = `${path}/${extra.join(',')}`;
        message = `unknown field${extra.length > 1 ? 's' : ''} ${extra.map((x) => `"${x}"`).join(', ')}`;
      }
      const key = `${path}\u0000${message}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ path, message });
    }
    return out;
  };
  return {
    check: (value: unknown): value is Static<T> => compiled.Check(value),
    problems,
    parse(value: unknown): Static<T> {
      if (compiled.Check(value)) return value;
      throw new ValidationError(what, problems(value));
    },
  };
}

/** Parses JSON text and validates it; a syntax error is a ValidationError too. */
export function parseJson<T extends TSchema>(v: Validator<T>, text: string, what: string): Static<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(what, [{ path: '', message: `not valid JSON: ${(err as Error).message}` }]);
  }
  return v.parse(value);
}
