import type { ApplyResult, AuditEntry, HostState } from '@livegraft/protocol';
import { visibleStrings } from '@livegraft/protocol/visible-text';
import { useEffect, useRef } from 'preact/hooks';
import { API } from './api.ts';

/** The server's activity stream events (see the server's dashboard/activity.ts). */
export interface CheckinActivity {
  hostId: string;
  hostname: string;
  kernelId: string;
  state: HostState;
  appliedLevel: number;
  apply: ApplyResult | null;
  at: string;
}
export interface TripwireActivity {
  hostId: string;
  hostname: string;
  accepted: number;
  events: { cve: string; comm: string; pid: number; at: string }[];
}
export type LiveEvent =
  | { kind: 'audit'; data: AuditEntry }
  | { kind: 'checkin'; data: CheckinActivity }
  | { kind: 'tripwire'; data: TripwireActivity }
  | { kind: 'status'; data: { connected: boolean } };

type Listener = (e: LiveEvent) => void;

/** One EventSource for the whole page; components subscribe to it. */
export class LiveFeed {
  readonly #listeners = new Set<Listener>();
  #source: EventSource | undefined;
  connected = false;

  start(): void {
    if (this.#source !== undefined) return;
    const es = new EventSource(`${API}/activity/stream`);
    this.#source = es;
    const relay =
      (kind: 'audit' | 'checkin' | 'tripwire') =>
      (m: MessageEvent<string>): void => {
        this.#emit({ kind, data: JSON.parse(m.data, visibleStrings) } as LiveEvent);
      };
    es.addEventListener('audit', relay('audit'));
    es.addEventListener('checkin', relay('checkin'));
    es.addEventListener('tripwire', relay('tripwire'));
    es.addEventListener('ready', () => this.#status(true));
    es.onerror = () => this.#status(false);
  }

  stop(): void {
    this.#source?.close();
    this.#source = undefined;
    this.#status(false);
  }

  subscribe(l: Listener): () => void {
    this.#listeners.add(l);
    return () => this.#listeners.delete(l);
  }

  #status(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    this.#emit({ kind: 'status', data: { connected } });
  }

  #emit(e: LiveEvent): void {
    for (const l of this.#listeners) l(e);
  }
}

export const live = new LiveFeed();

/** Calls `onChange` (debounced) whenever live activity may have changed what a page shows. */
export function useLiveRefresh(
  onChange: () => void,
  kinds: LiveEvent['kind'][] = ['audit', 'checkin', 'tripwire'],
): void {
  const ref = useRef(onChange);
  ref.current = onChange;
  useEffect(() => {
    let timer: number | undefined;
    const unsubscribe = live.subscribe((e) => {
      if (!kinds.includes(e.kind)) return;
      window.clearTimeout(timer);
      timer = window.setTimeout(() => ref.current(), 300);
    });
    return () => {
      unsubscribe();
      window.clearTimeout(timer);
    };
  }, [kinds.join()]);
}
