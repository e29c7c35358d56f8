import { fixLines, levelFixesOf, LivegraftError } from '@livegraft/protocol';
import type { CheckOutcome, OpOutcome, StatusReport, UpdateOutcome } from '../operations/agent.ts';

/** All human and JSON output lives here so the commands stay about behaviour. */

export const toJson = (value: unknown): string => `${JSON.stringify(value, null, 2)}\n`;

export function errorLine(err: unknown): string {
  if (err instanceof LivegraftError) return `error [${err.code}]: ${err.message}\n`;
  return `error [INTERNAL]: ${(err as Error)?.stack ?? String(err)}\n`;
}

export function errorJson(err: unknown): string {
  const e =
    err instanceof LivegraftError
      ? err.toJSON()
      : { code: 'INTERNAL', message: String((err as Error)?.message ?? err) };
  return toJson({ ok: false, error: e });
}

function ago(sec: number | null): string {
  if (sec === null) return 'never';
  if (sec < 120) return `${sec}s ago`;
  if (sec < 7200) return `${Math.round(sec / 60)}m ago`;
  if (sec < 172800) return `${Math.round(sec / 3600)}h ago`;
  return `${Math.round(sec / 86400)}d ago`;
}

export function formatCheck(c: CheckOutcome): string {
  return `${checkLine(c)}${offerLines(c)}${ignoreLines(c)}`;
}

/** The fixes an offered level would bring (only known when the check-in carried its manifest). */
function offerLines(c: CheckOutcome): string {
  if (c.latest === undefined || c.latestLevel <= c.appliedLevel) return '';
  const { fixes, skipped } = levelFixesOf(c.latest);
  return `${[`level ${c.latest.level} fixes:`, ...fixLines(fixes, skipped)].join('\n')}\n`;
}

function checkLine(c: CheckOutcome): string {
  if (!c.kernelSupported) return `kernel unsupported: the server has no patches for this kernel build\n`;
  if (c.latestLevel > c.appliedLevel) {
    return `update available: level ${c.latestLevel} (applied: ${c.appliedLevel || 'none'})\n`;
  }
  if (c.appliedLevel === 0) return 'no patches applied; none available for this kernel\n';
  return `up to date: level ${c.appliedLevel}\n`;
}

/** The host's ignore-list (set on the server) as it bears on the offer: what it held back, what still runs. */
function ignoreLines(c: CheckOutcome): string {
  const held = c.desired?.ignoredFixes ?? [];
  const running = c.desired?.ignoredRunning ?? [];
  let out = '';
  if (held.length > 0) out += `held at level ${c.desired?.level ?? 0} by ignored fixes: ${held.join(', ')}\n`;
  if (running.length > 0) out += `the running level carries ignored fixes: ${running.join(', ')}\n`;
  return out;
}

export function checkJson(c: CheckOutcome): unknown {
  return {
    exit: c.exit,
    kernelSupported: c.kernelSupported,
    appliedLevel: c.appliedLevel,
    latestLevel: c.latestLevel,
    latest:
      c.latest === undefined
        ? null
        : { name: c.latest.name, level: c.latest.level, cves: c.latest.cves, ...levelFixesOf(c.latest) },
    desired: c.desired ?? null,
    checkinIntervalSec: c.checkinIntervalSec,
  };
}

export function formatOp(o: OpOutcome | UpdateOutcome): string {
  let out = `${o.summary}\n`;
  if (o.removed !== undefined && o.removed.length > 0) out += `removed retired modules: ${o.removed.join(', ')}\n`;
  for (const w of o.warnings ?? []) out += `warning: ${w}\n`;
  return out;
}

export function opJson(o: OpOutcome | UpdateOutcome): unknown {
  const { summary, apply, removed, warnings, disabled } = o;
  const check = 'check' in o && o.check !== undefined ? checkJson(o.check) : undefined;
  return {
    ok: true,
    summary,
    apply: apply ?? null,
    removed: removed ?? [],
    warnings: warnings ?? [],
    disabled: disabled ?? null,
    check,
  };
}

export function formatStatus(s: StatusReport): string {
  const lines: string[] = [];
  const row = (k: string, v: string): void => {
    lines.push(`${`${k}:`.padEnd(18)}${v}`);
  };
  row('kernel', `${s.kernel.release} (${s.kernel.machine})`);
  row('kernel id', s.kernel.id);
  row('build id', s.kernel.buildId ?? 'unknown');
  row('effective kernel', s.effectiveRelease);
  row('applied level', s.appliedLevel === 0 ? 'none' : `${s.appliedLevel} (${s.patchName ?? '?'})`);
  row('transition', s.inTransition ? 'IN PROGRESS' : 'idle');
  const foreign = s.patches.filter((p) => !p.name.startsWith('livegraft_'));
  if (foreign.length > 0)
    row('other patches', foreign.map((p) => `${p.name}${p.enabled ? '' : ' (disabled)'}`).join(', '));
  if (s.retiredModules.length > 0) row('retired modules', `${s.retiredModules.join(', ')} (awaiting rmmod)`);
  if (s.fixes.length > 0) {
    row('fixes', '');
    lines.push(...fixLines(s.fixes, s.skipped));
  } else if (s.appliedLevel > 0) {
    row('fixes', 'unknown (manifest not cached)');
  }
  row('CVEs', s.cves.length > 0 ? s.cves.join(', ') : 'none');
  row('cached levels', s.cachedLevels.length > 0 ? s.cachedLevels.join(', ') : 'none');
  const latest =
    s.kernelSupported === false ? 'kernel unsupported' : s.latestLevel === null ? 'unknown' : String(s.latestLevel);
  row('latest level', latest);
  row('last check', `${s.lastCheckAt ?? 'never'} (${ago(s.lastCheckAgeSec)})${s.checkStale ? ' STALE' : ''}`);
  if (s.hold) row('hold', `at level ${s.hold.maxLevel} since ${s.hold.reason} (${s.hold.at})`);
  row(
    'last error',
    s.lastError ? `[${s.lastError.code}] ${s.lastError.message.split('\n')[0]} (${s.lastError.at})` : 'none',
  );
  if (s.lastApply) {
    const a = s.lastApply;
    row(
      'last apply',
      `${a.action} ${a.fromLevel} -> ${a.toLevel} ${a.ok ? 'ok' : `FAILED [${a.code ?? '?'}]`} in ${a.durationMs} ms at ${a.at}`,
    );
  } else {
    row('last apply', 'never');
  }
  if (s.lastApply?.phasesMs) {
    row(
      'apply phases',
      Object.entries(s.lastApply.phasesMs)
        .map(([k, v]) => `${k} ${v} ms`)
        .join(', '),
    );
  }
  if (s.blockingTasks.length > 0) {
    row('blocking tasks', s.blockingTasks.map((t) => `${t.pid} (${t.comm})`).join(', '));
  }
  if (s.credentialRevoked) {
    row('CREDENTIAL REVOKED', `since ${s.credentialRevoked.at}: the server refused this host's token; re-enrol`);
  }
  if (s.disabled) row('DISABLED', `${s.disabled.detail}: nothing will be applied`);
  if (s.attention) {
    row('NEEDS ATTENTION', `[${s.attention.code}] since ${s.attention.at}; patching stopped until "clear-attention"`);
  }
  if (s.quarantined.length > 0) {
    row('quarantined', `${s.quarantined.join(', ')} (never auto-applied; "unquarantine N" to allow)`);
  }
  row('release counter', `highest level run: ${s.highestLevel}`);
  if (s.journal) row('interrupted', `${s.journal.op} of level ${s.journal.level} at step "${s.journal.step}"`);
  row('trusted root', s.trustedRootVersion === null ? 'NONE (updates fail closed)' : `version ${s.trustedRootVersion}`);
  row('server', s.server ?? 'not enrolled');
  if (s.mirror) row('mirror', s.mirror);
  row('host id', s.hostId ?? 'not enrolled');
  if (s.clockWarning) row('clock', s.clockWarning);
  if (s.stateWarning) row('state warning', s.stateWarning);
  return `${lines.join('\n')}\n`;
}
