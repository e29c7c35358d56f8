import type { AuditEntry } from '@livegraft/protocol';
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

/** One line a person understands for an audit entry, or undefined for bookkeeping. */
export function describeAudit(e: AuditEntry): ActivityItem | undefined {
  if (QUIET.has(e.action)) return undefined;
  const d = (typeof e.details === 'object' ? e.details : null) as Details;
  const base = { id: e.id, at: e.at, who: e.actor.name };
  switch (e.action) {
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
    case 'host.update': {
      const changes = Object.entries(d ?? {})
        .map(([k, v]) => `${k} ${Array.isArray(v) ? v.join(', ') : String(v)}`)
        .join('; ');
      return {
        ...base,
        kind: 'change',
        text: `Host ${e.target.slice(0, 8)} updated: ${changes}`,
        href: `/hosts/${encodeURIComponent(e.target)}`,
      };
    }
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
      return { ...base, kind: 'change', text: `${e.action} ${e.target}` };
  }
}

/** A live event as an activity line; check-ins without an apply are not activity. */
export function describeLive(e: LiveEvent): ActivityItem | undefined {
  if (e.kind === 'audit') return describeAudit(e.data);
  if (e.kind === 'checkin') {
    const a = e.data.apply;
    if (a === null) return undefined;
    const href = `/hosts/${encodeURIComponent(e.data.hostId)}`;
    const id = `apply-${e.data.hostId}-${a.at}`;
    if (!a.ok) {
      return {
        id,
        at: a.at,
        kind: 'failure',
        href,
        text: `${e.data.hostname} failed to ${a.action} level ${a.toLevel}${a.code === undefined ? '' : `: ${a.code}`}`,
      };
    }
    const verb =
      a.action === 'rollback' || a.toLevel < a.fromLevel
        ? 'rolled back to'
        : a.action === 'unload'
          ? 'unloaded, now'
          : 'applied';
    return {
      id,
      at: a.at,
      kind: a.action === 'rollback' ? 'rollback' : 'apply',
      href,
      text: `${e.data.hostname} ${verb} level ${a.toLevel} in ${Math.round(a.durationMs)} ms`,
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
