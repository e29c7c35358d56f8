import type { DesiredEvent } from '@livegraft/protocol';
import { applyLocal } from './apply-local.ts';
import { clearAttention, unquarantine } from './attention.ts';
import { boot } from './boot.ts';
import { check, recordRevoked, type CheckOutcome } from './check.ts';
import { AgentContext, type AgentDeps, type OpOutcome } from './context.ts';
import { enroll, pinRoot, type EnrolOptions, type EnrolOutcome } from './enrol.ts';
import { updateFrom } from './offline.ts';
import { rollback } from './rollback.ts';
import { OperationRunner } from './runner.ts';
import { status, type StatusReport } from './status.ts';
import { unload } from './unload.ts';
import { update, type UpdateOutcome } from './update.ts';

export { DEFAULT_CHECKIN_INTERVAL_SEC, isRevocation, statusExitFor, type CheckOutcome } from './check.ts';
export type { AgentDeps, OpOutcome } from './context.ts';
export type { StatusReport } from './status.ts';
export type { UpdateOutcome } from './update.ts';

/**
 * The agent's operations, one module each, behind one object for the CLI
 * and the daemon. Each mutating one goes through the runner: it takes the
 * host lock, reconciles an interrupted change with sysfs, reads the truth
 * from sysfs, acts (journalled), and records what happened in state.json.
 */
export class Agent {
  readonly deps: AgentDeps;
  readonly #ctx: AgentContext;
  readonly #runner: OperationRunner;

  constructor(deps: AgentDeps) {
    this.deps = deps;
    this.#ctx = new AgentContext(deps);
    this.#runner = new OperationRunner(this.#ctx);
  }

  /** Rewrites the files scanners read from what the kernel runs now (best effort). */
  publishScannerFiles(): string[] {
    return this.#runner.publishScannerFiles();
  }

  /**
   * Writes the space reserve now rather than on the host's first kernel
   * change (best effort: every change still makes sure of it first, and
   * refuses if it does not fit).
   */
  keepSpaceReserve(): void {
    try {
      this.#ctx.reserve.ensure();
    } catch (err) {
      this.deps.log.log(
        'warn',
        `the space reserve is not in place; the next kernel change tries again: ${(err as Error).message}`,
      );
    }
  }

  /** The server refused our token (push stream or check-in): remembered until a check-in succeeds again. */
  recordRevoked(message: string): void {
    recordRevoked(this.#ctx, message);
  }

  async enroll(opts: EnrolOptions): Promise<EnrolOutcome> {
    return enroll(this.#ctx, this.#runner, opts);
  }

  async pinRoot(file: string): Promise<OpOutcome> {
    return pinRoot(this.#ctx, this.#runner, file);
  }

  async check(): Promise<CheckOutcome> {
    return check(this.#ctx, this.#runner);
  }

  async update(opts: { manual: boolean; pushed?: DesiredEvent }): Promise<UpdateOutcome> {
    return update(this.#ctx, this.#runner, opts);
  }

  async updateFrom(dir: string, opts: { allowDowngrade?: boolean } = {}): Promise<UpdateOutcome> {
    return updateFrom(this.#ctx, this.#runner, dir, opts);
  }

  async applyLocal(manifestPath: string, opts: { allowDowngrade?: boolean } = {}): Promise<OpOutcome> {
    return applyLocal(this.#ctx, this.#runner, manifestPath, opts);
  }

  async rollback(to?: number): Promise<OpOutcome> {
    return rollback(this.#ctx, this.#runner, to);
  }

  async unload(): Promise<OpOutcome> {
    return unload(this.#ctx, this.#runner);
  }

  async boot(): Promise<OpOutcome> {
    return boot(this.#ctx, this.#runner);
  }

  async clearAttention(): Promise<OpOutcome> {
    return clearAttention(this.#ctx, this.#runner);
  }

  async unquarantine(level: number): Promise<OpOutcome> {
    return unquarantine(this.#ctx, this.#runner, level);
  }

  status(): StatusReport {
    return status(this.#ctx);
  }
}
