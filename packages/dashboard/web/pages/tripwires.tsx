import type { JSX } from 'preact';
import type { TripwireRecord } from '@livegraft/protocol';
import { useApi } from '../data.ts';
import { ago, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link } from '../router.tsx';
import { Card, Empty, Loading, Problem, Table } from '../ui.tsx';

/** Newest first: exploit attempts that ran into a live patch's LG_TRIPWIRE. */
export function Tripwires(): JSX.Element {
  const trips = useApi<TripwireRecord[]>('/tripwires?limit=500');
  useLiveRefresh(trips.reload, ['tripwire']);
  const rows = [...(trips.data ?? [])].sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  return (
    <div class="page">
      <h1>Tripwires</h1>
      <p class="muted">
        Each line is an attempt to reach a patched flaw, stopped by the live patch and reported by the host’s agent.
      </p>
      <Card>
        {trips.data === undefined ? (
          trips.error ? (
            <Problem error={trips.error} what="Tripwire events" />
          ) : (
            <Loading />
          )
        ) : rows.length === 0 ? (
          <Empty>No exploit attempt recorded.</Empty>
        ) : (
          <Table
            label="tripwire events"
            rows={rows}
            rowKey={(t) => t.id}
            initialSort={{ key: 'at', desc: true }}
            columns={[
              {
                key: 'at',
                label: 'When',
                sort: (t) => t.at,
                render: (t) => (
                  <time dateTime={t.at} title={when(t.at)}>
                    {ago(t.at)}
                  </time>
                ),
              },
              {
                key: 'host',
                label: 'Host',
                sort: (t) => t.hostname,
                render: (t) => <Link href={`/hosts/${encodeURIComponent(t.hostId)}`}>{t.hostname}</Link>,
              },
              {
                key: 'cve',
                label: 'CVE',
                sort: (t) => t.cve,
                render: (t) => <Link href={`/cves/${t.cve}`}>{t.cve}</Link>,
              },
              {
                key: 'proc',
                label: 'Process',
                sort: (t) => t.comm,
                render: (t) => <code>{`${t.comm} (pid ${t.pid})`}</code>,
              },
              { key: 'uid', label: 'uid', class: 'num', sort: (t) => t.uid, render: (t) => t.uid },
              {
                key: 'fix',
                label: 'Blocked by',
                render: (t) => `${t.fixId ?? '—'}${t.level === null ? '' : ` (level ${t.level})`}`,
              },
            ]}
          />
        )}
      </Card>
    </div>
  );
}
