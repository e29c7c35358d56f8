import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { HostPage, HostRow } from '@livegraft/protocol/dashboard';
import type { SessionInfo } from '../api.ts';
import { useApi } from '../data.ts';
import { HOST_STATUSES, STATUS_LABEL, type HostStatus } from '../fleet.ts';
import { ago, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link, useLocation } from '../router.tsx';
import { Card, Empty, Loading, Pager, Problem, StatusBadge, Table, type Column } from '../ui.tsx';

/** Hosts listed per page (the server sorts, filters and pages the whole fleet). */
const PAGE = 50;
/** A search is asked for once typing pauses this long. */
const SEARCH_PAUSE_MS = 250;

function Select(props: {
  label: string;
  value: string;
  options: string[];
  onChange: (v: string) => void;
  names?: Record<string, string>;
}): JSX.Element {
  const id = `f-${props.label.toLowerCase().replace(/\W+/g, '-')}`;
  return (
    <label class="filter" for={id}>
      <span>{props.label}</span>
      <select id={id} value={props.value} onChange={(e) => props.onChange((e.target as HTMLSelectElement).value)}>
        <option value="">any</option>
        {props.options.map((o) => (
          <option key={o} value={o}>
            {props.names?.[o] ?? o}
          </option>
        ))}
      </select>
    </label>
  );
}

const sortable = (): number => 0;

export function Hosts(_props: { session: SessionInfo }): JSX.Element {
  const { query } = useLocation();
  const [offset, setOffset] = useState(0);
  // Every change of what is listed starts again at its first page.
  const first =
    <T,>(set: (v: T) => void) =>
    (v: T): void => {
      set(v);
      setOffset(0);
    };
  const [text, setText] = useState('');
  const [q, setQ] = useState('');
  const [feed, setFeed] = useState(query.get('feed') ?? '');
  const [tag, setTag] = useState(query.get('tag') ?? '');
  const [kernel, setKernel] = useState('');
  const [level, setLevel] = useState('');
  const [status, setStatus] = useState(query.get('status') ?? '');
  const [sort, setSort] = useState({ key: 'status', desc: false });
  useEffect(() => {
    const t = setTimeout(() => {
      if (text.trim() === q) return;
      setQ(text.trim());
      setOffset(0);
    }, SEARCH_PAUSE_MS);
    return () => clearTimeout(t);
  }, [text]);

  const params = new URLSearchParams({ offset: String(offset), limit: String(PAGE), sort: sort.key });
  if (sort.desc) params.set('order', 'desc');
  for (const [k, v] of [
    ['q', q],
    ['feed', feed],
    ['tag', tag],
    ['kernel', kernel],
    ['level', level],
    ['status', status],
  ] as const)
    if (v !== '') params.set(k, v);
  const page = useApi<HostPage>(`/dashboard/hosts?${params.toString()}`);
  useLiveRefresh(page.reload, ['checkin', 'audit']);

  const p = page.data;
  if (p === undefined) {
    return (
      <div class="page">
        <h1>Hosts</h1>
        {page.error ? <Problem error={page.error} /> : <Loading />}
      </div>
    );
  }
  const columns: Column<HostRow>[] = [
    {
      key: 'hostname',
      label: 'Host',
      sort: sortable,
      render: (r) => <Link href={`/hosts/${encodeURIComponent(r.id)}`}>{r.hostname}</Link>,
    },
    {
      key: 'status',
      label: 'Status',
      sort: sortable,
      render: (r) => <StatusBadge status={r.status as HostStatus} />,
    },
    { key: 'feed', label: 'Feed', sort: sortable, render: (r) => r.feed },
    {
      key: 'tags',
      label: 'Tags',
      render: (r) =>
        r.tags.map((t) => (
          <span key={t} class="tag">
            {t}
          </span>
        )),
    },
    {
      key: 'kernel',
      label: 'Kernel',
      sort: sortable,
      render: (r) => <code title={r.kernelId}>{r.release}</code>,
    },
    {
      key: 'level',
      label: 'Level',
      class: 'num',
      sort: sortable,
      render: (r) => (
        <span>
          {r.appliedLevel}
          {r.desiredLevel !== null && <span class="muted"> → {r.desiredLevel}</span>}
        </span>
      ),
    },
    {
      key: 'checkin',
      label: 'Last check-in',
      sort: sortable,
      render: (r) => <time title={when(r.lastCheckinAt)}>{ago(r.lastCheckinAt)}</time>,
    },
  ];
  if (p.exposure) {
    columns.push({
      key: 'exposure',
      label: 'Open CVEs',
      class: 'num',
      sort: sortable,
      render: (r) =>
        r.exposure === null ? (
          '—'
        ) : (
          <span title={`${r.exposure.critical} critical, ${r.exposure.high} high, ${r.exposure.total} in all`}>
            {r.exposure.critical > 0 && <span class="badge sev sev-critical">{r.exposure.critical}</span>}{' '}
            {r.exposure.high > 0 && <span class="badge sev sev-high">{r.exposure.high}</span>} {r.exposure.total}
          </span>
        ),
    });
  }
  const clear = (): void => {
    setText('');
    setQ('');
    setFeed('');
    setTag('');
    setKernel('');
    setLevel('');
    setStatus('');
    setOffset(0);
  };
  const last = Math.min(p.offset + p.items.length, p.matching);
  return (
    <div class="page">
      <h1>Hosts</h1>
      <Card>
        <div class="filters" role="search">
          <label class="filter" for="f-text">
            <span>Search</span>
            <input
              id="f-text"
              type="search"
              placeholder="hostname or id"
              maxLength={128}
              value={text}
              onInput={(e) => setText((e.target as HTMLInputElement).value)}
            />
          </label>
          <Select
            label="Status"
            value={status}
            options={[...HOST_STATUSES]}
            names={STATUS_LABEL}
            onChange={first(setStatus)}
          />
          <Select label="Feed" value={feed} options={p.facets.feeds} onChange={first(setFeed)} />
          <Select label="Tag" value={tag} options={p.facets.tags} onChange={first(setTag)} />
          <Select label="Kernel" value={kernel} options={p.facets.kernels} onChange={first(setKernel)} />
          <Select label="Level" value={level} options={p.facets.levels.map(String)} onChange={first(setLevel)} />
          <button type="button" class="button small" onClick={clear}>
            Clear
          </button>
        </div>
        <p class="muted small" data-testid="host-count" data-total={p.total} data-matching={p.matching}>
          {p.matching} of {p.total} hosts
          {p.matching > 0 && ` · showing ${p.offset + 1}–${last}`}
        </p>
        {p.items.length === 0 ? (
          <Empty>No host matches these filters.</Empty>
        ) : (
          <Table
            label="hosts"
            rows={p.items}
            columns={columns}
            rowKey={(r) => r.id}
            sorted={{ sort, onSort: first(setSort) }}
          />
        )}
        <Pager
          label="host pages"
          offset={p.offset}
          shown={p.items.length}
          matching={p.matching}
          pageSize={PAGE}
          onOffset={setOffset}
        />
      </Card>
    </div>
  );
}
