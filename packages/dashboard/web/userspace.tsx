import type { JSX } from 'preact';
import type { HostUserspaceLibrary } from '@livegraft/protocol';
import { useApi } from './data.ts';
import { ago } from './format.ts';
import { Link } from './router.tsx';
import { Badge, Card, Empty, Loading, Problem, Table } from './ui.tsx';

/** A host's user-space libraries with live patches: level, processes, and the CVEs fixed in them. */
export function UserspaceCard(props: { hostId: string }): JSX.Element {
  const libs = useApi<HostUserspaceLibrary[]>(`/hosts/${props.hostId}/userspace`);
  return (
    <Card title="User-space libraries" id="userspace">
      {libs.data === undefined ? (
        libs.error ? (
          <Problem error={libs.error} what="User-space libraries" />
        ) : (
          <Loading />
        )
      ) : libs.data.length === 0 ? (
        <Empty>No library with a user-space live patch reported.</Empty>
      ) : (
        <Table
          label="user-space libraries"
          rows={libs.data}
          rowKey={(l) => l.buildId}
          columns={[
            {
              key: 'lib',
              label: 'Library',
              sort: (l) => l.soname,
              render: (l) => (
                <>
                  <code>{l.soname}</code> <span class="muted mono">{l.buildId.slice(0, 12)}</span>
                </>
              ),
            },
            {
              key: 'level',
              label: 'Level',
              class: 'num',
              sort: (l) => l.level,
              render: (l) => (
                <>
                  {l.level}
                  {l.halted === true && <Badge tone="bad">halted</Badge>}
                  {l.pinned !== null && <span class="muted"> (pinned {l.pinned})</span>}
                </>
              ),
            },
            {
              key: 'procs',
              label: 'Processes',
              render: (l) => `${l.patched} patched, ${l.unpatched} unpatched, ${l.refused} refused`,
            },
            {
              key: 'cves',
              label: 'CVEs fixed live',
              render: (l) =>
                l.level === 0 || l.cves.length === 0
                  ? '—'
                  : l.cves.map((c) => (
                      <Link key={c} href={`/cves/${c}`} class="cve">
                        {c}
                      </Link>
                    )),
            },
            { key: 'seen', label: 'Reported', sort: (l) => l.updatedAt, render: (l) => ago(l.updatedAt) },
          ]}
        />
      )}
    </Card>
  );
}
