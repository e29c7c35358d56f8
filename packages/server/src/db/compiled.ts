import type { Compilable, CompiledQuery, Kysely } from 'kysely';
import { BoundedMap } from '../bounded-map.ts';
import type { ExecSync, WriteSync } from './node-sqlite.ts';

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
  const now = writeSync?.((exec) => drive(steps(), exec));
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

function drive<T>(g: Steps<T>, exec: ExecSync): T {
  let next = g.next();
  while (next.done !== true) next = g.next(exec(next.value.sql, next.value.parameters));
  return next.value;
}

/** Whether a write was committed (with what its steps returned), or the error that stopped it. */
export type Outcome<T> = { ok: true; value: T } | { ok: false; err: unknown };

/**
 * A write that another write's transaction may carry, under a savepoint, so
 * that it costs no commit of its own and its failure never fails the other.
 * Whoever runs it, joined or alone, settles it once with the outcome.
 */
export interface JoinableWrite<T> {
  steps(): Steps<T>;
  /** Runs the steps in a transaction of their own, when there is none to join. */
  alone(): Promise<Outcome<T>>;
  settle(outcome: Outcome<T>): void;
}

/** The steps in a transaction of their own, as an outcome (never rejects). */
export function runAlone<T>(
  db: Kysely<unknown>,
  writeSync: WriteSync | undefined,
  steps: () => Steps<T>,
): Promise<Outcome<T>> {
  return runSteps(db, writeSync, steps).then(
    (value): Outcome<T> => ({ ok: true, value }),
    (err: unknown): Outcome<T> => ({ ok: false, err }),
  );
}

/**
 * Inside a WriteSync body: runs the joined write under a savepoint. A failed
 * step rolls back the joined write only. The outcome counts once the
 * enclosing transaction commits.
 */
export function runJoined<T>(exec: ExecSync, w: JoinableWrite<T>): Outcome<T> {
  exec('SAVEPOINT joined_write', []);
  try {
    const value = drive(w.steps(), exec);
    exec('RELEASE joined_write', []);
    return { ok: true, value };
  } catch (err) {
    exec('ROLLBACK TO joined_write', []);
    exec('RELEASE joined_write', []);
    return { ok: false, err };
  }
}
