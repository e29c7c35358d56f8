import { LivegraftError } from '@livegraft/protocol';
import type { AgentConfig } from '../state/config.ts';
import type { AgentState } from '../state/state.ts';
import { MAX_ERROR_TEXT, type AgentContext, type OpOutcome } from './context.ts';
import type { OperationRunner } from './runner.ts';

// Quarantine (a level the host went down with) and attention (a stuck change a human must look at):
// the guards every kernel-changing operation asks, and the two operations that lift them.

/** Best effort: a failed state write must not stop a boot from re-applying what ran. */
export function quarantine(ctx: AgentContext, kernelId: string, level: number, why: string): void {
  const message =
    `level ${level} for kernel ${kernelId.slice(0, 12)} was being applied when ${why}; it is quarantined and ` +
    `will not be applied again until an operator runs "livegraft-agent unquarantine ${level}"`;
  ctx.record((s) => {
    const list = new Set(s.quarantined?.[kernelId] ?? []);
    list.add(level);
    s.quarantined = { ...s.quarantined, [kernelId]: [...list].sort((a, b) => a - b) };
    s.lastError = { code: 'LEVEL_QUARANTINED', message, at: ctx.nowIso(), op: 'apply' };
  });
  ctx.deps.log.log('warn', message, { code: 'LEVEL_QUARANTINED', level });
}

export function setAttention(ctx: AgentContext, err: LivegraftError): void {
  ctx.record((s) => {
    s.attention = { code: err.code, message: err.message.slice(0, MAX_ERROR_TEXT), at: ctx.nowIso() };
  });
}

/** Refuses to change the kernel while a human must look at it. */
export function assertNoAttention(state: AgentState): void {
  if (state.attention) {
    throw new LivegraftError(
      'NEEDS_ATTENTION',
      `patching is stopped since ${state.attention.at}: [${state.attention.code}] ` +
        `${state.attention.message.split('\n')[0] ?? ''}. Investigate (a reboot clears a stuck transition), ` +
        'then run "livegraft-agent clear-attention"',
    );
  }
}

export function assertNotQuarantined(state: AgentState, kernelId: string, level: number): void {
  if ((state.quarantined?.[kernelId] ?? []).includes(level)) {
    throw new LivegraftError(
      'LEVEL_QUARANTINED',
      `level ${level} is quarantined: it was being applied when the host went down. ` +
        `Run "livegraft-agent unquarantine ${level}" to allow it again`,
    );
  }
}

export function assertEnabled(ctx: AgentContext, config: AgentConfig | undefined): void {
  const ks = ctx.killSwitch(config);
  if (ks !== undefined) {
    throw new LivegraftError('AGENT_DISABLED', `livegraft is disabled (${ks.detail}); not loading anything`);
  }
}

/** Why no automatic load may be tried in this boot, if the kernel already refused our modules in it. */
export function kernelRefusal(ctx: AgentContext, state: AgentState): string | undefined {
  const r = state.kernelRefusal;
  if (!r || r.bootId !== ctx.bootId()) return undefined;
  return `the running kernel refused an unsigned module at ${r.at} [${r.code}]; not loading anything again until the next boot or a manual "livegraft-agent update"`;
}

/** The operator has dealt with a stuck transition: allow patching again. */
export function clearAttention(ctx: AgentContext, runner: OperationRunner): Promise<OpOutcome> {
  return runner.exclusive(() => {
    const before = ctx.readState().attention;
    ctx.store.update((s) => {
      s.attention = null;
      if (s.lastError?.code === before?.code) s.lastError = null;
    });
    return Promise.resolve({
      summary: before ? `cleared [${before.code}] from ${before.at}; patching is allowed again` : 'nothing to clear',
    });
  });
}

export function unquarantine(ctx: AgentContext, runner: OperationRunner, level: number): Promise<OpOutcome> {
  return runner.exclusive(() => {
    const kernel = ctx.identity();
    const list = ctx.readState().quarantined?.[kernel.id] ?? [];
    if (!list.includes(level)) {
      return Promise.resolve({
        summary: `level ${level} is not quarantined for this kernel (quarantined: ${list.join(', ') || 'none'})`,
      });
    }
    ctx.store.update((s) => {
      s.quarantined = { ...s.quarantined, [kernel.id]: list.filter((l) => l !== level) };
      if (s.lastError?.code === 'LEVEL_QUARANTINED') s.lastError = null;
    });
    return Promise.resolve({ summary: `level ${level} may be applied again` });
  });
}
