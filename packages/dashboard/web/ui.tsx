import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import type { Severity } from '@livegraft/protocol';
import { forbidden } from './data.ts';
import { navigate } from './router.tsx';
import { STATUS_HELP, STATUS_LABEL, type HostStatus } from './fleet.ts';

export function Card(props: {
  title?: string;
  actions?: ComponentChildren;
  children: ComponentChildren;
  id?: string;
}): JSX.Element {
  return (
    <section class="card" id={props.id}>
      {(props.title !== undefined || props.actions !== undefined) && (
        <header class="card-head">
          {props.title !== undefined && <h2>{props.title}</h2>}
          {props.actions !== undefined && <div class="card-actions">{props.actions}</div>}
        </header>
      )}
      {props.children}
    </section>
  );
}

export function Stat(props: {
  label: string;
  value: number | string;
  tone?: string;
  name?: string;
  hint?: string;
  href?: string;
}): JSX.Element {
  const inner = (
    <>
      <span class="stat-value" data-value={String(props.value)}>
        {props.value}
      </span>
      <span class="stat-label">{props.label}</span>
    </>
  );
  const href = props.href;
  return href !== undefined ? (
    <a
      class={`stat tone-${props.tone ?? 'plain'}`}
      data-stat={props.name}
      title={props.hint}
      href={href}
      onClick={(e) => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey) return;
        e.preventDefault();
        navigate(href);
      }}
    >
      {inner}
    </a>
  ) : (
    <div class={`stat tone-${props.tone ?? 'plain'}`} data-stat={props.name} title={props.hint}>
      {inner}
    </div>
  );
}

const STATUS_TONE: Record<HostStatus, string> = {
  stale: 'muted',
  failed: 'bad',
  attention: 'warn',
  unsupported: 'warn',
  behind: 'info',
  held: 'warn',
  patched: 'good',
  unpatched: 'plain',
};

export function statusTone(s: HostStatus): string {
  return STATUS_TONE[s];
}

export function StatusBadge(props: { status: HostStatus }): JSX.Element {
  return (
    <span class={`badge tone-${STATUS_TONE[props.status]}`} title={STATUS_HELP[props.status]}>
      {STATUS_LABEL[props.status]}
    </span>
  );
}

export function SeverityBadge(props: { severity: Severity | string }): JSX.Element {
  return <span class={`badge sev sev-${props.severity.replace(' ', '-')}`}>{props.severity}</span>;
}

export function Badge(props: { tone?: string; children: ComponentChildren; title?: string }): JSX.Element {
  return (
    <span class={`badge tone-${props.tone ?? 'plain'}`} title={props.title}>
      {props.children}
    </span>
  );
}

export function Problem(props: { error: unknown; what?: string }): JSX.Element {
  if (forbidden(props.error)) {
    return (
      <p class="note" role="note">
        {props.what ?? 'This'} is not for your role: {props.error instanceof Error ? props.error.message : ''}
      </p>
    );
  }
  const message = props.error instanceof Error ? props.error.message : String(props.error);
  return (
    <p class="error" role="alert">
      {message}
    </p>
  );
}

export function Loading(): JSX.Element {
  return <p class="muted">Loading…</p>;
}

export function Empty(props: { children: ComponentChildren }): JSX.Element {
  return <p class="muted empty">{props.children}</p>;
}

// ---------------------------------------------------------------------------
// Confirm dialog and toasts: one of each for the whole app.

export interface ConfirmRequest {
  title: string;
  body: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
}

let openConfirm: (r: ConfirmRequest) => Promise<boolean> = () => Promise.resolve(false);
let pushToast: (t: { text: string; tone: 'good' | 'bad' }) => void = () => {};

/** Asks before any change; resolves true only when the person presses the confirm button. */
export function confirmAction(r: ConfirmRequest): Promise<boolean> {
  return openConfirm(r);
}

export function toast(text: string, tone: 'good' | 'bad' = 'good'): void {
  pushToast({ text, tone });
}

/** Confirms, runs the change, reports the outcome, then lets the page reload. */
export async function act(r: ConfirmRequest, run: () => Promise<unknown>, done: () => void, ok: string): Promise<void> {
  if (!(await confirmAction(r))) return;
  try {
    await run();
    toast(ok);
  } catch (e) {
    toast(e instanceof Error ? e.message : String(e), 'bad');
  }
  done();
}

export function ConfirmHost(): JSX.Element {
  const ref = useRef<HTMLDialogElement>(null);
  const [req, setReq] = useState<ConfirmRequest | undefined>();
  const resolver = useRef<(ok: boolean) => void>(() => {});
  useEffect(() => {
    openConfirm = (r) =>
      new Promise<boolean>((resolve) => {
        resolver.current = resolve;
        setReq(r);
      });
  }, []);
  useEffect(() => {
    if (req !== undefined && ref.current !== null && !ref.current.open) ref.current.showModal();
  }, [req]);
  const finish = (ok: boolean): void => {
    ref.current?.close();
    setReq(undefined);
    resolver.current(ok);
  };
  return (
    <dialog ref={ref} class="confirm" onCancel={() => finish(false)} aria-labelledby="confirm-title">
      {req !== undefined && (
        <form method="dialog" onSubmit={(e) => (e.preventDefault(), finish(true))}>
          <h2 id="confirm-title">{req.title}</h2>
          <div class="confirm-body">{req.body}</div>
          <div class="confirm-buttons">
            <button type="button" class="button" onClick={() => finish(false)}>
              Cancel
            </button>
            <button type="submit" class={`button ${req.danger === true ? 'danger' : 'primary'}`} data-confirm="yes">
              {req.confirmLabel}
            </button>
          </div>
        </form>
      )}
    </dialog>
  );
}

export function ToastHost(): JSX.Element {
  const [items, setItems] = useState<{ id: number; text: string; tone: 'good' | 'bad' }[]>([]);
  useEffect(() => {
    let n = 0;
    pushToast = (t) => {
      const id = ++n;
      setItems((xs) => [...xs, { id, ...t }]);
      window.setTimeout(() => setItems((xs) => xs.filter((x) => x.id !== id)), t.tone === 'bad' ? 9000 : 4000);
    };
  }, []);
  return (
    <div class="toasts" role="status" aria-live="polite">
      {items.map((t) => (
        <div key={t.id} class={`toast tone-${t.tone}`}>
          {t.text}
        </div>
      ))}
    </div>
  );
}

// ---------------------------------------------------------------------------
// Sortable table

/** Rows rendered before "Show all": an old kernel can have thousands of open CVEs. */
const TABLE_ROWS = 100;

export interface Column<T> {
  key: string;
  label: string;
  render: (row: T) => ComponentChildren;
  /** Sort value; columns without one are not sortable. */
  sort?: (row: T) => string | number;
  class?: string;
}

export function Table<T>(props: {
  rows: T[];
  columns: Column<T>[];
  rowKey: (row: T) => string;
  initialSort?: { key: string; desc?: boolean };
  label: string;
  /** Sorted elsewhere (on the server): the order shown, and what a click on a column asks for. */
  sorted?: { sort: { key: string; desc?: boolean }; onSort: (s: { key: string; desc: boolean }) => void };
}): JSX.Element {
  const [own, setOwn] = useState(props.initialSort ?? { key: '', desc: false });
  const sort = props.sorted?.sort ?? own;
  const setSort = props.sorted?.onSort ?? setOwn;
  const [all, setAll] = useState(props.sorted !== undefined);
  const col = props.columns.find((c) => c.key === sort.key);
  const rows = [...props.rows];
  if (col?.sort !== undefined && props.sorted === undefined) {
    const f = col.sort;
    rows.sort((a, b) => {
      const x = f(a);
      const y = f(b);
      const c = typeof x === 'number' && typeof y === 'number' ? x - y : String(x).localeCompare(String(y));
      return sort.desc === true ? -c : c;
    });
  }
  const shown = all ? rows : rows.slice(0, TABLE_ROWS);
  return (
    <div class="table-wrap">
      <table aria-label={props.label}>
        <thead>
          <tr>
            {props.columns.map((c) => (
              <th
                key={c.key}
                class={c.class}
                aria-sort={sort.key === c.key ? (sort.desc === true ? 'descending' : 'ascending') : undefined}
              >
                {c.sort === undefined ? (
                  c.label
                ) : (
                  <button
                    type="button"
                    class="sort"
                    onClick={() => setSort({ key: c.key, desc: sort.key === c.key ? sort.desc !== true : false })}
                  >
                    {c.label}
                    <span aria-hidden="true">{sort.key === c.key ? (sort.desc === true ? ' ▼' : ' ▲') : ''}</span>
                  </button>
                )}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {shown.map((r) => (
            <tr key={props.rowKey(r)}>
              {props.columns.map((c) => (
                <td key={c.key} class={c.class} data-label={c.label}>
                  {c.render(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
      {shown.length < rows.length && (
        <p class="more">
          Showing {shown.length} of {rows.length}.{' '}
          <button type="button" class="button small" onClick={() => setAll(true)}>
            Show all
          </button>
        </p>
      )}
    </div>
  );
}

/** Previous / "page N of M" / next for a list paged on the server; nothing when it fits on one page. */
export function Pager(props: {
  label: string;
  offset: number;
  shown: number;
  matching: number;
  pageSize: number;
  onOffset: (offset: number) => void;
}): JSX.Element | null {
  const { offset, matching, pageSize } = props;
  if (matching <= pageSize) return null;
  return (
    <nav class="pager" aria-label={props.label}>
      <button
        type="button"
        class="button small"
        data-page="prev"
        disabled={offset === 0}
        onClick={() => props.onOffset(Math.max(0, offset - pageSize))}
      >
        ← Previous
      </button>{' '}
      <span class="muted small">
        page {Math.floor(offset / pageSize) + 1} of {Math.ceil(matching / pageSize)}
      </span>{' '}
      <button
        type="button"
        class="button small"
        data-page="next"
        disabled={offset + props.shown >= matching}
        onClick={() => props.onOffset(offset + pageSize)}
      >
        Next →
      </button>
    </nav>
  );
}
