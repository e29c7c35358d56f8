import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { FleetExposure, HostRecord } from '@livegraft/protocol';
import { mayRead, type SessionInfo } from '../api.ts';
import { useApi } from '../data.ts';
import { hostStatus, HOST_STATUSES, STATUS_LABEL, type HostStatus } from '../fleet.ts';
import { ago, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link, useLocation } from '../router.tsx';
import { Card, Empty, Loading, Problem, StatusBadge, Table, type Column } from '../ui.tsx';

interface Row {
  host: HostRecord;
  status: HostStatus;
  critical: number | undefined;
  high: number | undefined;
  open: number | undefined;
}

function uniq(xs: string[]): string[] {
  return [...new Set(xs)].sort();
}

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

export function Hosts(props: { session: SessionInfo }): JSX.Element {
  const { query } = useLocation();
  const hosts = useApi<HostRecord[]>('/hosts');
  const exposure = useApi<FleetExposure>(mayRead(props.session.role, 'compliance') ? '/exposure' : null);
  useLiveRefresh(() => {
    hosts.reload();
    exposure.reload();
  }, ['checkin', 'audit']);
  const [text, setText] = useState('');
  const [feed, setFeed] = useState(query.get('feed') ?? '');
  const [tag, setTag] = useState(query.get('tag') ?? '');
  const [kernel, setKernel] = useState('');
  const [level, setLevel] = useState('');
  const [status, setStatus] = useState(query.get('status') ?? '');

  if (hosts.data === undefined) {
    return (
      <div class="page">
        <h1>Hosts</h1>
        {hosts.error ? <Problem error={hosts.error} /> : <Loading />}
      </div>
    );
  }
  const exp = new Map((exposure.data?.perHost ?? []).map((p) => [p.hostId, p]));
  const rows: Row[] = hosts.data.map((h) => {
    const e = exp.get(h.id);
    return {
      host: h,
      status: hostStatus(h, props.session.checkinIntervalSec),
      critical: e?.counts.critical,
      high: e?.counts.high,
      open: e?.counts.total,
    };
  });
  const shown = rows.filter(
    (r) =>
      (text === '' || r.host.hostname.toLowerCase().includes(text.toLowerCase()) || r.host.id.startsWith(text)) &&
      (feed === '' || r.host.feed === feed) &&
      (tag === '' || (r.host.tags ?? []).includes(tag)) &&
      (kernel === '' || r.host.release === kernel) &&
      (level === '' || String(r.host.appliedLevel) === level) &&
      (status === '' || r.status === status),
  );
  const withExposure = exposure.data !== undefined;
  const columns: Column<Row>[] = [
    {
      key: 'host',
      label: 'Host',
      sort: (r) => r.host.hostname,
      render: (r) => <Link href={`/hosts/${encodeURIComponent(r.host.id)}`}>{r.host.hostname}</Link>,
    },
    {
      key: 'status',
      label: 'Status',
      sort: (r) => HOST_STATUSES.indexOf(r.status),
      render: (r) => <StatusBadge status={r.status} />,
    },
    { key: 'feed', label: 'Feed', sort: (r) => r.host.feed ?? '', render: (r) => r.host.feed ?? '—' },
    {
      key: 'tags',
      label: 'Tags',
      render: (r) =>
        (r.host.tags ?? []).map((t) => (
          <span key={t} class="tag">
            {t}
          </span>
        )),
    },
    {
      key: 'kernel',
      label: 'Kernel',
      sort: (r) => r.host.release,
      render: (r) => <code title={r.host.kernelId}>{r.host.release}</code>,
    },
    {
      key: 'level',
      label: 'Level',
      class: 'num',
      sort: (r) => r.host.appliedLevel,
      render: (r) => (
        <span>
          {r.host.appliedLevel}
          {r.host.desired !== undefined && r.host.desired !== null && r.host.desired.level !== r.host.appliedLevel && (
            <span class="muted"> → {r.host.desired.level}</span>
          )}
        </span>
      ),
    },
    {
      key: 'checkin',
      label: 'Last check-in',
      sort: (r) => r.host.lastCheckinAt ?? '',
      render: (r) => <time title={when(r.host.lastCheckinAt)}>{ago(r.host.lastCheckinAt)}</time>,
    },
  ];
  if (withExposure) {
    columns.push({
      key: 'exposure',
      label: 'Open CVEs',
      class: 'num',
      sort: (r) => (r.critical ?? 0) * 1e6 + (r.high ?? 0) * 1e3 + (r.open ?? 0),
      render: (r) =>
        r.open === undefined ? (
          '—'
        ) : (
          <span title={`${r.critical ?? 0} critical, ${r.high ?? 0} high, ${r.open} in all`}>
            {(r.critical ?? 0) > 0 && <span class="badge sev sev-critical">{r.critical}</span>}{' '}
            {(r.high ?? 0) > 0 && <span class="badge sev sev-high">{r.high}</span>} {r.open}
          </span>
        ),
    });
  }
  const clear = (): void => {
    setText('');
    setFeed('');
    setTag('');
    setKernel('');
    setLevel('');
    setStatus('');
  };
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
              value={text}
              onInput={(e) => setText((e.target as HTMLInputElement).value)}
            />
          </label>
          <Select
            label="Status"
            value={status}
            options={[...HOST_STATUSES]}
            names={STATUS_LABEL}
            onChange={setStatus}
          />
          <Select label="Feed" value={feed} options={uniq(rows.map((r) => r.host.feed ?? ''))} onChange={setFeed} />
          <Select label="Tag" value={tag} options={uniq(rows.flatMap((r) => r.host.tags ?? []))} onChange={setTag} />
          <Select label="Kernel" value={kernel} options={uniq(rows.map((r) => r.host.release))} onChange={setKernel} />
          <Select
            label="Level"
            value={level}
            options={uniq(rows.map((r) => String(r.host.appliedLevel)))}
            onChange={setLevel}
          />
          <button type="button" class="button small" onClick={clear}>
            Clear
          </button>
        </div>
        <p class="muted small" data-testid="host-count">
          {shown.length} of {rows.length} hosts
          {exposure.error !== undefined && ` · exposure: ${exposure.error.message}`}
        </p>
        {shown.length === 0 ? (
          <Empty>No host matches these filters.</Empty>
        ) : (
          <Table
            label="hosts"
            rows={shown}
            columns={columns}
            rowKey={(r) => r.host.id}
            initialSort={{ key: 'status' }}
          />
        )}
      </Card>
    </div>
  );
}
