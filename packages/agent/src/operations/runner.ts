import { join } from 'node:path';
import type { AgentConfig } from '../state/config.ts';
import { acquireLock } from '../state/lock.ts';
import { scannerView, writeScannerFiles } from '../state/scanner.ts';
import { asStateIoError } from '../state/state-io.ts';
import type { AgentContext } from './context.ts';
import { reconcile } from './reconcile.ts';

/**
 * The one way an operation runs: exclusively (the host lock, shared with
 * every other agent process on the host), and, when it may change the
 * kernel, after settling whatever a killed agent left in the journal.
 * The kernel change itself is journalled step by step (journalled.ts).
 *
 * INVARIANTS:
 * - Every operation that reads-then-writes state or the kernel enters through
 *   exclusive() or mutating(); only status (read-only) and the best-effort
 *   note of a revoked credential run outside.
 * - A raw filesystem error thrown inside is reported as a state I/O error
 *   with its path, errno and a hint; the lock is released whatever happens.
 * - Do NOT nest exclusive()/mutating(): the host lock is not re-entrant, so
 *   an inner call waits for the outer one and gives up with BUSY.
 * - mutating() always rewrites the scanner files afterwards, from the kernel.
 */
export class OperationRunner {
  readonly #ctx: AgentContext;

  constructor(ctx: AgentContext) {
    this.#ctx = ctx;
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const ctx = this.#ctx;
    const release = await acquireLock(join(ctx.deps.stateDir, 'agent.lock'), ctx.deps.clock, {
      bootId: ctx.bootId(),
      onStale: (m) => ctx.deps.log.log('warn', m),
    });
    try {
      return await fn();
    } catch (err) {
      // A raw filesystem error (a damaged or full state disk) is reported with its path, errno and a hint.
      throw asStateIoError(err, ctx.deps.stateDir) ?? err;
    } finally {
      release();
    }
  }

  /** Every command that may change the kernel: lock, then settle whatever a killed agent left behind. */
  async mutating<T>(config: AgentConfig | undefined, fn: () => Promise<T>): Promise<T> {
    return this.exclusive(async () => {
      try {
        await reconcile(this.#ctx, config);
        return await fn();
      } finally {
        this.publishScannerFiles();
      }
    });
  }

  /**
   * Rewrites the files scanners read (effective-version, cvelist,
   * scanner.json) from what the kernel runs now. Best effort: a scanner file
   * that cannot be written never fails a kernel operation.
   */
  publishScannerFiles(): string[] {
    const ctx = this.#ctx;
    try {
      const kernel = ctx.identity();
      const level = ctx.applied(kernel).level;
      const manifest = level > 0 ? ctx.cache.get(kernel.id, level)?.manifest : undefined;
      const { state } = ctx.store.read();
      const appliedAt = state.kernelId === kernel.id && state.level === level ? (state.appliedAt ?? null) : null;
      return writeScannerFiles(ctx.deps.stateDir, scannerView(kernel, level, manifest, appliedAt));
    } catch (err) {
      ctx.deps.log.log('warn', `cannot write the scanner files in ${ctx.deps.stateDir}: ${(err as Error).message}`);
      return [];
    }
  }
}
