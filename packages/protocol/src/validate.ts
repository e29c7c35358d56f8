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

/** One member of a union in words: a literal's value, null, or its type (with its pattern or range). */
function memberText(member: unknown): string | undefined {
  if (typeof member !== 'object' || member === null) return undefined;
  const m = member as { const?: unknown; type?: unknown; pattern?: unknown; minimum?: unknown; maximum?: unknown };
  if ('const' in m) return JSON.stringify(m.const);
  const range =
    typeof m.minimum === 'number' && typeof m.maximum === 'number'
      ? ` from ${m.minimum} to ${m.maximum}`
      : typeof m.minimum === 'number'
        ? ` of at least ${m.minimum}`
        : '';
  switch (m.type) {
    case 'null':
      return 'null';
    case 'boolean':
      return 'true or false';
    case 'string':
      return typeof m.pattern === 'string' ? `a string matching ${m.pattern}` : 'a string';
    case 'integer':
      return `an integer${range}`;
    case 'number':
      return `a number${range}`;
    case 'object':
      return 'an object';
    case 'array':
      return 'a list';
    default:
      return undefined;
  }
}

/**
 * The members, in words, of the union at or just above `schemaPath` (a
 * "#/properties/x/anyOf/2" pointer into `schema`), or undefined when that is
 * not a union or a member cannot be put in words.
 */
function literalUnion(schema: TSchema, schemaPath: string): string[] | undefined {
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
  const values: string[] = [];
  for (const member of anyOf) {
    const text = memberText(member);
    if (text === undefined) return undefined;
    values.push(text);
  }
  return values;
}

/** Whether an error is a union's own ("anyOf") or one of a member's, at the member's top level. */
function inUnion(keyword: string, schemaPath: string): boolean {
  return keyword === 'anyOf' || /\/anyOf\/\d+$/.test(schemaPath);
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
      // A union fails once per member (and once more as "anyOf"): say once which values it takes.
      const values = inUnion(e.keyword, e.schemaPath) ? literalUnion(schema, e.schemaPath) : undefined;
      if (values !== undefined) message = `must be one of ${values.join(', ')}`;
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
