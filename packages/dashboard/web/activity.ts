import type { AuditEntry } from '@livegraft/protocol';
import type { ActivityItem as ServerItem, ApplyRecord } from '@livegraft/protocol/dashboard';
import type { LiveEvent } from './live.ts';

export type ActivityKind = 'release' | 'promotion' | 'rollback' | 'halt' | 'apply' | 'failure' | 'tripwire' | 'change';

export interface ActivityItem {
  id: string;
  at: string;
  kind: ActivityKind;
  text: string;
  href?: string;
  who?: string;
}

/** Audit actions that are bookkeeping, not fleet activity. */
const QUIET = new Set(['session.create']);

type Details = Record<string, unknown> | null;

function num(d: Details, k: string): string {
  const v = d?.[k];
  return typeof v === 'number' || typeof v === 'string' ? String(v) : '?';
}

export function shortKernel(id: string): string {
  return id.slice(0, 8);
}

function list(v: unknown): string {
  return Array.isArray(v) ? (v.length === 0 ? 'none' : v.map(String).join(', ')) : String(v);
}

/** What a host.update changed, in words ("tags set to web, eu-west; feed set to staging"). */
export function describeHostChanges(d: Details): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(d ?? {})) {
    if (k === 'tags') parts.push(`tags set to ${list(v)}`);
    else if (k === 'feed') parts.push(`moved to feed ${String(v)}`);
    else if (k === 'ignore') parts.push(`ignore-list set to ${list(v)}`);
    else if (k === 'autoUpdate')
      parts.push(v === false ? 'automatic updates turned off' : 'automatic updates turned on');
    else parts.push(`${k} set to ${list(v)}`);
  }
  return parts.length === 0 ? 'nothing changed' : parts.join('; ');
}

function quoted(name: string | undefined, id: string): string {
  return name === undefined ? id.slice(0, 8) : `“${name}”`;
}

/** One line a person understands for an audit entry, or undefined for bookkeeping. */
export function describeAudit(e: AuditEntry, targetName?: string): ActivityItem | undefined {
  if (QUIET.has(e.action)) return undefined;
  const d = (typeof e.details === 'object' ? e.details : null) as Details;
  const base = { id: e.id, at: e.at, who: e.actor.name };
  const detailName = typeof d?.['name'] === 'string' ? d['name'] : undefined;
  const name = targetName ?? detailName;
  switch (e.action) {
    case 'token.create':
      return {
        ...base,
        kind: 'change',
        text: `API token ${quoted(name, e.target)} created${typeof d?.['role'] === 'string' ? ` (${d['role']} role)` : ''}`,
      };
    case 'token.revoke':
      return { ...base, kind: 'change', text: `API token ${quoted(name, e.target)} revoked` };
    case 'registration-key.create':
      return {
        ...base,
        kind: 'change',
        text: `Registration key ${quoted(name, e.target)} created${typeof d?.['feed'] === 'string' ? ` for feed ${d['feed']}` : ''}`,
      };
    case 'registration-key.revoke':
      return { ...base, kind: 'change', text: `Registration key ${quoted(name, e.target)} revoked` };
    case 'host.revoke':
      return {
        ...base,
        kind: 'change',
        text: `Host ${name ?? e.target.slice(0, 8)} revoked`,
        href: `/hosts/${encodeURIComponent(e.target)}`,
      };
    case 'feed.create':
      return { ...base, kind: 'change', text: `Feed ${e.target} created`, href: '/rollouts' };
    case 'feed.update':
      return { ...base, kind: 'change', text: `Feed ${e.target} settings changed`, href: '/rollouts' };
    case 'feed.delete':
      return { ...base, kind: 'change', text: `Feed ${e.target} deleted`, href: '/rollouts' };
    case 'fix.submit':
      return { ...base, kind: 'change', text: `Fix ${e.target} submitted`, href: '/pipeline' };
    case 'patch.record':
      return {
        ...base,
        kind: 'release',
        text: `Level ${num(d, 'level')} uploaded for kernel ${shortKernel(e.target)}`,
        href: '/rollouts',
      };
    case 'feed.publish': {
      const feeds = Array.isArray(d?.['feeds']) ? (d['feeds'] as string[]).join(', ') : '?';
      return {
        ...base,
        kind: 'release',
        text: `Level ${num(d, 'level')} released to ${feeds} (kernel ${shortKernel(e.target)})`,
        href: '/rollouts',
      };
    }
    case 'feed.promote': {
      const list = Array.isArray(d?.['promoted']) ? (d['promoted'] as { level: number; from: string }[]) : undefined;
      if (list !== undefined) {
        const what = list.length === 0 ? 'nothing new' : list.map((p) => `level ${p.level}`).join(', ');
        return {
          ...base,
          kind: 'promotion',
          text: `Promoted ${num(d, 'from')} → ${e.target}: ${what}`,
          href: '/rollouts',
        };
      }
      return {
        ...base,
        kind: 'promotion',
        text: `Promoted level ${num(d, 'level')} ${num(d, 'from')} → ${e.target} by its rule (kernel ${shortKernel(typeof d?.['kernelId'] === 'string' ? d['kernelId'] : '')})`,
        href: '/rollouts',
      };
    }
    case 'userspace.promote':
      return {
        ...base,
        kind: 'promotion',
        text: `Promoted user-space level ${num(d, 'level')} ${num(d, 'from')} → ${e.target}${d?.['rule'] === true ? ' by its rule' : ''} (build ${num(d, 'buildId').slice(0, 12)})`,
        href: '/rollouts',
      };
    case 'userspace.halt':
      return {
        ...base,
        kind: 'halt',
        text: `User-space level ${num(d, 'level')} of build ${e.target.slice(0, 12)} halted: ${typeof d?.['reason'] === 'string' ? d['reason'] : ''}`,
        href: '/rollouts',
      };
    case 'feed.set-level':
      return { ...base, kind: 'change', text: `Feed ${e.target} set to level ${num(d, 'level')}`, href: '/rollouts' };
    case 'rollback.feed':
    case 'rollback.tag':
      return {
        ...base,
        kind: 'rollback',
        text: `Rolled back ${e.action === 'rollback.tag' ? 'tag' : 'feed'} ${e.target} to level ${num(d, 'level')}`,
        href: '/rollouts',
      };
    case 'rollout.halt':
      return {
        ...base,
        kind: 'halt',
        text: `Level ${num(d, 'level')} halted: ${typeof d?.['reason'] === 'string' ? d['reason'] : ''}`,
        href: '/rollouts',
      };
    case 'rollout.resume':
      return {
        ...base,
        kind: 'change',
        text: `Level ${num(d, 'level')} resumed (kernel ${shortKernel(e.target)})`,
        href: '/rollouts',
      };
    case 'host.enroll':
      return {
        ...base,
        kind: 'change',
        text: `${typeof d?.['hostname'] === 'string' ? d['hostname'] : e.target} enrolled in ${num(d, 'feed')}`,
        href: `/hosts/${encodeURIComponent(e.target)}`,
      };
    case 'host.update':
      return {
        ...base,
        kind: 'change',
        text: `${name ?? `Host ${e.target.slice(0, 8)}`}: ${describeHostChanges(d)}`,
        href: `/hosts/${encodeURIComponent(e.target)}`,
      };
    default:
      if (e.action.startsWith('pin.') || e.action.startsWith('unpin.')) {
        const [verb, scope] = e.action.split('.');
        const level = d?.['level'];
        return {
          ...base,
          kind: 'change',
          text: `${verb === 'pin' ? 'Pinned' : 'Unpinned'} ${scope} ${e.target}${typeof level === 'number' ? ` at level ${level}` : ''}`,
          href: '/rollouts',
        };
      }
      return { ...base, kind: 'change', text: `${e.action} ${name ?? e.target}` };
  }
}

/** One line for an apply a host reported. */
export function describeApply(hostname: string, a: Omit<ApplyRecord, 'hostId' | 'hostname' | 'kernelId'>): string {
  if (!a.ok) return `${hostname} failed to ${a.action} level ${a.toLevel}${a.code === undefined ? '' : `: ${a.code}`}`;
  const verb =
    a.action === 'rollback' || a.toLevel < a.fromLevel
      ? 'rolled back to'
      : a.action === 'unload'
        ? 'unloaded, now'
        : a.action === 'boot'
          ? 're-applied at boot'
          : 'applied';
  return `${hostname} ${verb} level ${a.toLevel} in ${Math.round(a.durationMs)} ms`;
}

function applyKind(a: { ok: boolean; action: string }): ActivityKind {
  return !a.ok ? 'failure' : a.action === 'rollback' ? 'rollback' : 'apply';
}

/** A line of the server's recent activity (GET /dashboard/activity), with the ids live events use. */
export function describeItem(i: ServerItem): ActivityItem | undefined {
  if (i.kind === 'audit') return describeAudit(i.entry, i.targetName ?? undefined);
  if (i.kind === 'apply') {
    const a = i.apply;
    return {
      id: `apply-${a.hostId}-${a.at}`,
      at: a.at,
      kind: applyKind(a),
      href: `/hosts/${encodeURIComponent(a.hostId)}`,
      text: describeApply(a.hostname, a),
    };
  }
  return {
    id: `trip-${i.hostId}-${i.at}`,
    at: i.at,
    kind: 'tripwire',
    href: '/tripwires',
    text: `Exploit attempt blocked on ${i.hostname}: ${i.cve} by ${i.comm} (pid ${i.pid})`,
  };
}

/** A live event as an activity line; check-ins without an apply are not activity. */
export function describeLive(e: LiveEvent): ActivityItem | undefined {
  if (e.kind === 'audit') return describeAudit(e.data);
  if (e.kind === 'checkin') {
    const a = e.data.apply;
    if (a === null) return undefined;
    const href = `/hosts/${encodeURIComponent(e.data.hostId)}`;
    return {
      id: `apply-${e.data.hostId}-${new Date(a.at).toISOString()}`,
      at: a.at,
      kind: applyKind(a),
      href,
      text: describeApply(e.data.hostname, a),
    };
  }
  if (e.kind === 'tripwire') {
    const first = e.data.events[0];
    return {
      id: `trip-${e.data.hostId}-${first?.at ?? ''}`,
      at: first?.at ?? new Date().toISOString(),
      kind: 'tripwire',
      href: '/tripwires',
      text: `Exploit attempt blocked on ${e.data.hostname}: ${first?.cve ?? '?'} by ${first?.comm ?? '?'} (pid ${first?.pid ?? '?'})${e.data.accepted > 1 ? ` and ${e.data.accepted - 1} more` : ''}`,
    };
  }
  return undefined;
}
