import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import { BoundedMap } from '../bounded-map.ts';
import type { WriteSync } from './node-sqlite.ts';

/** Statement shapes one cache keeps; a shape is a fixed SQL text, so a repository has a handful. */
const SHAPES_MAX = 256;

/**
 * Query texts compiled once per shape. Kysely builds and compiles a query on
 * every call, which on the check-in path cost more than running it; a shape
 * is compiled the first time and then reused with each call's values.
 *
 * The caller names the shape and lists its values in the order the compiled
 * query binds them. The first compile checks that order, so a listing that
 * does not match fails at once, in tests, instead of binding values to the
 * wrong columns.
 */
export class CompiledShapes {
  readonly #shapes = new BoundedMap<string, CompiledQuery>(SHAPES_MAX);

  of(key: string, values: readonly unknown[], build: () => Compilable): CompiledQuery {
    const hit = this.#shapes.get(key);
    if (hit !== undefined) return { ...hit, parameters: values };
    const compiled = build().compile();
    const bound = compiled.parameters;
    if (bound.length !== values.length || bound.some((v, i) => !Object.is(v, values[i]))) {
      throw new Error(`statement shape ${key}: the listed values are not the ones it binds, in that order`);
    }
    this.#shapes.set(key, compiled);
    return compiled;
  }
}

/** Statements that yield each compiled query and get its rows back; one transaction runs them. */
export type Steps<T> = Generator<CompiledQuery, T, Record<string, unknown>[]>;

/**
 * Runs steps as one transaction: at once on SQLite (no await between its
 * statements), else (PostgreSQL, or SQLite while another transaction is
 * open) through Kysely, statement by statement.
 */
export async function runSteps<T>(
  db: Kysely<unknown>,
  writeSync: WriteSync | undefined,
  steps: () => Steps<T>,
): Promise<T> {
  const now = writeSync?.((exec) => {
    const g = steps();
    let next = g.next();
    while (next.done !== true) next = g.next(exec(next.value.sql, next.value.parameters));
    return next.value;
  });
  if (now !== undefined) return now.value;
  return db.transaction().execute(async (tx) => {
    const g = steps();
    let next = g.next();
    while (next.done !== true) {
      const { rows } = await tx.executeQuery<Record<string, unknown>>(next.value);
      next = g.next(rows);
    }
    return next.value;
  });
}
