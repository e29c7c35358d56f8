import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { Type, type Static, type TSchema } from 'typebox';
import { ApplyResult, BlockingTask, KernelId, parseJson, validator } from '@livegraft/protocol';
import { writeFileAtomic } from '../lib/fs-atomic.ts';
import { stateIoError } from './state-io.ts';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

const LastCheck = Type.Object({
  kernelId: KernelId,
  kernelSupported: Type.Boolean(),
  latestLevel: Type.Integer({ minimum: 0 }),
  checkinIntervalSec: Type.Integer({ minimum: 1 }),
});
export type LastCheck = Static<typeof LastCheck>;

/**
 * <state>/state.json: what the agent remembers between runs. It is advice,
 * not truth: the applied level is always read back from sysfs.
 */
export const AgentState = Type.Object({
  schema: Type.Literal(1),
  /** The kernel `level` refers to; boot re-applies only on the same kernel build. */
  kernelId: Type.Optional(Nullable(KernelId)),
  /** The level this agent last put in place for kernelId (0 = none / unloaded). */
  level: Type.Integer({ minimum: 0 }),
  appliedAt: Type.Optional(Nullable(Type.String())),
  lastCheckAt: Type.Optional(Nullable(Type.String())),
  lastCheck: Type.Optional(Nullable(LastCheck)),
  lastError: Type.Optional(
    Nullable(
      Type.Object({
        code: Type.String(),
        message: Type.String(),
        at: Type.String(),
        /** 'check' errors clear on the next good check-in; apply errors on the next good apply. */
        op: Type.Optional(Type.Union([Type.Literal('check'), Type.Literal('apply')])),
      }),
    ),
  ),
  lastApply: Type.Optional(Nullable(ApplyResult)),
  /** Set by rollback/unload: the daemon does not go above maxLevel until a manual `update`. */
  hold: Type.Optional(
    Nullable(
      Type.Object({
        maxLevel: Type.Integer({ minimum: 0 }),
        reason: Type.Union([Type.Literal('rollback'), Type.Literal('unload')]),
        at: Type.String(),
      }),
    ),
  ),
  /** A module that failed terminally; the daemon won't retry that exact module, a manual `update` will. */
  blocked: Type.Optional(
    Nullable(Type.Object({ level: Type.Integer(), sha256: Type.String(), code: Type.String(), at: Type.String() })),
  ),
  /**
   * The monotonic release counter per kernel build: the highest level this
   * host has run (seeded from what the kernel has loaded). Signed metadata
   * offering less is refused unless an operator authorised the downgrade.
   */
  highestLevel: Type.Optional(Type.Record(Type.String(), Type.Integer({ minimum: 0 }))),
  /** Levels per kernel build that were being applied when the host went down; never auto-applied again. */
  quarantined: Type.Optional(Type.Record(Type.String(), Type.Array(Type.Integer({ minimum: 1 })))),
  /** Tasks that kept the last transition from finishing (set by a stall, cleared by the next good apply). */
  blockingTasks: Type.Optional(Nullable(Type.Array(BlockingTask, { maxItems: 64 }))),
  /**
   * The running kernel refuses every unsigned module (module.sig_enforce,
   * lockdown, modules_disabled). Nothing is loaded automatically again during
   * the same boot; a manual `update`/`apply` tries once more, and so does the
   * next boot (a key may have been enrolled meanwhile).
   */
  kernelRefusal: Type.Optional(
    Nullable(Type.Object({ bootId: Type.String(), code: Type.String(), message: Type.String(), at: Type.String() })),
  ),
  /** The server refused this host's token (revoked): push stops; re-enrolling clears it. */
  revoked: Type.Optional(Nullable(Type.Object({ at: Type.String(), message: Type.String() }))),
  /** This host's clock minus the server's (its Date header) at the last check-in. */
  clockSkew: Type.Optional(Nullable(Type.Object({ sec: Type.Integer(), at: Type.String() }))),
  /** Set when the kernel was left in a state a human must look at (a reverse that stalled); blocks patching. */
  attention: Type.Optional(Nullable(Type.Object({ code: Type.String(), message: Type.String(), at: Type.String() }))),
});
export type AgentState = Static<typeof AgentState>;
const stateValidator = validator(AgentState, 'agent state');

export const emptyState = (): AgentState => ({ schema: 1, level: 0 });

export class StateStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'state.json');
  }

  /**
   * A missing file is an empty state. A corrupt one is moved aside and
   * reported, never fatal: the kernel still says what is applied.
   */
  read(): { state: AgentState; warning?: string } {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { state: emptyState() };
      return { state: emptyState(), warning: `cannot read ${this.path}: ${(err as Error).message}` };
    }
    try {
      return { state: parseJson(stateValidator, text, this.path) };
    } catch (err) {
      const aside = `${this.path}.corrupt`;
      try {
        renameSync(this.path, aside);
      } catch {
        // Keep going with an empty state either way.
      }
      return {
        state: emptyState(),
        warning: `${(err as Error).message}; moved to ${aside}, starting from empty state`,
      };
    }
  }

  write(state: AgentState): void {
    stateValidator.parse(state);
    try {
      writeFileAtomic(this.path, `${JSON.stringify(state, null, 2)}\n`, 0o600);
    } catch (err) {
      throw stateIoError('write', this.path, err);
    }
  }

  update(fn: (s: AgentState) => void): AgentState {
    const { state } = this.read();
    fn(state);
    this.write(state);
    return state;
  }
}
