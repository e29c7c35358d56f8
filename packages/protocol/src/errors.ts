/**
 * Every failure that crosses a process or package boundary carries a stable,
 * machine-readable code. Messages say what failed and why; codes never change.
 */
export class LivegraftError extends Error {
  override readonly name: string = 'LivegraftError';
  readonly code: string;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.details = options?.details;
  }

  toJSON(): { code: string; message: string; details?: Record<string, unknown> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** One problem found while validating a value against a schema. */
export interface FieldProblem {
  /** JSON pointer to the offending field, "" for the value itself. */
  path: string;
  message: string;
}

export class ValidationError extends LivegraftError {
  override readonly name = 'ValidationError';
  readonly problems: FieldProblem[];

  constructor(what: string, problems: FieldProblem[]) {
    const summary = problems
      .slice(0, 5)
      .map((p) => `${p.path === '' ? '(root)' : p.path}: ${p.message}`)
      .join('; ');
    super('VALIDATION_FAILED', `invalid ${what}: ${summary}`, { details: { problems } });
    this.problems = problems;
  }
}

export function isLivegraftError(err: unknown): err is LivegraftError {
  return err instanceof LivegraftError;
}
