/** An SQL boolean as a driver returns it: SQLite answers 0 or 1, PostgreSQL true or false. */
export function sqlTrue(v: unknown): boolean {
  return v === true || Number(v) === 1;
}
