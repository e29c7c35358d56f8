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

export function validator<T extends TSchema>(schema: T, what: string): Validator<T> {
  const compiled = Compile(schema);
  const problems = (value: unknown): FieldProblem[] => {
    const seen = new Set<string>();
    const out: FieldProblem[] = [];
    const errors = [...compiled.Errors(value)];
    // A union of literals fails once per literal, then once as "anyOf": say which values it takes instead.
    const allowed = new Map<string, unknown[]>();
    for (const e of errors) {
      if (e.keyword !== 'const' || !/\/anyOf\/\d+$/.test(e.schemaPath)) continue;
      allowed.set(e.instancePath, [
        ...(allowed.get(e.instancePath) ?? []),
        (e.params as { allowedValue?: unknown }).allowedValue,
      ]);
    }
    for (const e of errors) {
      // additionalProperties reports twice (once as "schema is false"); keep the readable one.
      if (e.keyword === 'boolean') continue;
      if (e.keyword === 'const' && allowed.has(e.instancePath) && /\/anyOf\/\d+$/.test(e.schemaPath)) continue;
      let path = e.instancePath;
      let message = e.message;
      const values = e.keyword === 'anyOf' ? allowed.get(path) : undefined;
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
