import type { JSX } from 'preact';
import type { ComplianceReport, ExposureWindow, SlaPolicy } from '@livegraft/protocol';
import { API } from '../api.ts';
import { useApi } from '../data.ts';
import { ago, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link } from '../router.tsx';
import { Badge, Card, Empty, Loading, Problem, SeverityBadge, Stat, Table, type Column } from '../ui.tsx';

const windowColumns = (dueLabel: string): Column<ExposureWindow>[] => [
  {
    key: 'host',
    label: 'Host',
    sort: (w) => w.hostname,
    render: (w) => <Link href={`/hosts/${encodeURIComponent(w.hostId)}`}>{w.hostname}</Link>,
  },
  { key: 'cve', label: 'CVE', sort: (w) => w.cve, render: (w) => <Link href={`/cves/${w.cve}`}>{w.cve}</Link> },
  {
    key: 'sev',
    label: 'Severity',
    sort: (w) => w.cvssScore ?? 0,
    render: (w) => <SeverityBadge severity={w.severity} />,
  },
  { key: 'since', label: 'Exposed since', sort: (w) => w.start, render: (w) => when(w.start) },
  {
    key: 'due',
    label: dueLabel,
    sort: (w) => w.dueAt ?? '',
    render: (w) => <span title={when(w.dueAt)}>{ago(w.dueAt)}</span>,
  },
  { key: 'days', label: 'Days', class: 'num', sort: (w) => w.days, render: (w) => w.days.toFixed(1) },
];

function Policy(props: { policy: SlaPolicy }): JSX.Element {
  const entries = Object.entries(props.policy).filter(([, d]) => d !== null);
  return (
    <p class="muted">SLA: {entries.length === 0 ? 'none' : entries.map(([s, d]) => `${s} ${d} days`).join(', ')}.</p>
  );
}

export function Compliance(): JSX.Element {
  const report = useApi<ComplianceReport>('/reports/compliance?format=json');
  useLiveRefresh(report.reload, ['checkin', 'audit']);
  const r = report.data;
  const exportLinks = (
    <span class="exports">
      Export:{' '}
      {(['json', 'csv', 'pdf'] as const).map((f) => (
        <a key={f} class="button small" href={`${API}/reports/compliance?format=${f}`} download data-export={f}>
          {f.toUpperCase()}
        </a>
      ))}
    </span>
  );
  if (r === undefined) {
    return (
      <div class="page">
        <h1>Compliance</h1>
        {report.error ? <Problem error={report.error} what="The compliance report" /> : <Loading />}
      </div>
    );
  }
  const upcoming = [...r.upcoming].sort((a, b) => (a.dueAt ?? '').localeCompare(b.dueAt ?? ''));
  return (
    <div class="page">
      <h1>Compliance</h1>
      <Card title="Summary" actions={exportLinks}>
        <Policy policy={r.policy} />
        <div class="stats">
          <Stat
            label="Compliant hosts"
            value={`${r.summary.compliantHosts}/${r.summary.hosts}`}
            name="compliant"
            tone={r.summary.compliantHosts === r.summary.hosts ? 'good' : 'warn'}
          />
          <Stat
            label="Open breaches"
            value={r.summary.openBreaches}
            name="breaches"
            tone={r.summary.openBreaches > 0 ? 'bad' : 'good'}
          />
          <Stat label="Due, not yet late" value={r.summary.upcoming} name="upcoming" tone="warn" />
          <Stat label="Closed late" value={r.summary.closedLate} name="closed-late" />
          <Stat label="Closed windows" value={r.summary.closedWindows} name="closed" />
          <Stat
            label="Mean days to fix"
            value={r.summary.meanDaysToRemediate === null ? '—' : r.summary.meanDaysToRemediate.toFixed(1)}
            name="mttr"
          />
        </div>
        <p class="muted small" data-testid="dataset">
          Generated {when(r.generatedAt)}; CVE data: {r.dataset.cves} CVEs, kernel CVE records as of{' '}
          {r.dataset.cveRecordsAsOf ?? 'an unknown date'}, Debian changelogs as of{' '}
          {r.dataset.debianAsOf ?? 'an unknown date'}
          {r.dataset.ageDays === null ? '' : ` (${r.dataset.ageDays} days old)`}.
        </p>
        {r.dataset.warnings.map((w, i) => (
          <p key={i} class="small warn-text" role="status" data-warning={w.code}>
            {w.message}
          </p>
        ))}
      </Card>
      <Card title={`SLA breaches (${r.breaches.length})`}>
        {r.breaches.length === 0 ? (
          <Empty>No open exposure is past its due date.</Empty>
        ) : (
          <Table
            label="breaches"
            rows={r.breaches}
            columns={windowColumns('Was due')}
            rowKey={(w) => `${w.hostId}${w.cve}`}
            initialSort={{ key: 'due' }}
          />
        )}
      </Card>
      <Card title={`Upcoming deadlines (${upcoming.length})`}>
        {upcoming.length === 0 ? (
          <Empty>No open exposure with a due date ahead.</Empty>
        ) : (
          <Table
            label="upcoming deadlines"
            rows={upcoming}
            columns={windowColumns('Due')}
            rowKey={(w) => `${w.hostId}${w.cve}`}
            initialSort={{ key: 'due' }}
          />
        )}
      </Card>
      <Card title="Hosts">
        <Table
          label="host compliance"
          rows={r.hosts}
          rowKey={(h) => h.hostId}
          initialSort={{ key: 'breaches', desc: true }}
          columns={[
            {
              key: 'host',
              label: 'Host',
              sort: (h) => h.hostname,
              render: (h) => <Link href={`/hosts/${encodeURIComponent(h.hostId)}`}>{h.hostname}</Link>,
            },
            {
              key: 'ok',
              label: 'Compliant',
              sort: (h) => (h.compliant ? 1 : 0),
              render: (h) => (h.compliant ? <Badge tone="good">yes</Badge> : <Badge tone="bad">no</Badge>),
            },
            {
              key: 'breaches',
              label: 'Breaches',
              class: 'num',
              sort: (h) => h.openBreaches,
              render: (h) => h.openBreaches,
            },
            { key: 'open', label: 'Open', class: 'num', sort: (h) => h.openWindows, render: (h) => h.openWindows },
            {
              key: 'next',
              label: 'Next due',
              sort: (h) => h.nextDueAt ?? '~',
              render: (h) => (h.nextDueAt === null ? '—' : <span title={when(h.nextDueAt)}>{ago(h.nextDueAt)}</span>),
            },
            { key: 'level', label: 'Level', class: 'num', sort: (h) => h.appliedLevel, render: (h) => h.appliedLevel },
          ]}
        />
      </Card>
    </div>
  );
}
