import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { AuditEntry, ComplianceReport, FleetExposure, HostRecord } from '@livegraft/protocol';
import { getText, type SessionInfo } from '../api.ts';
import { describeAudit, describeLive, type ActivityItem } from '../activity.ts';
import { SeverityBars, TimeChart, type Series } from '../charts.tsx';
import { useApi } from '../data.ts';
import { countStatuses, HOST_STATUSES, STATUS_HELP, STATUS_LABEL } from '../fleet.ts';
import { ago, when } from '../format.ts';
import { exposureHistory, HISTORY_DAYS } from '../history.ts';
import { live, useLiveRefresh } from '../live.ts';
import { Link } from '../router.tsx';
import { Card, Empty, Loading, Problem, Stat, statusTone } from '../ui.tsx';

/** Lines kept in the activity list. */
const ACTIVITY_LINES = 30;

function HostsCard(props: { session: SessionInfo }): JSX.Element {
  const hosts = useApi<HostRecord[]>('/hosts');
  useLiveRefresh(hosts.reload);
  if (hosts.data === undefined)
    return <Card title="Hosts">{hosts.error ? <Problem error={hosts.error} /> : <Loading />}</Card>;
  const counts = countStatuses(hosts.data, props.session.checkinIntervalSec);
  return (
    <Card title="Hosts" actions={<Link href="/hosts">All hosts →</Link>}>
      <div class="stats" id="host-stats">
        <Stat label="Hosts" value={hosts.data.length} name="total" href="/hosts" />
        {HOST_STATUSES.map((s) => (
          <Stat
            key={s}
            label={STATUS_LABEL[s]}
            value={counts[s]}
            name={s}
            tone={counts[s] === 0 ? 'plain' : statusTone(s)}
            hint={STATUS_HELP[s]}
            href={`/hosts?status=${s}`}
          />
        ))}
      </div>
    </Card>
  );
}

function ExposureCard(): JSX.Element {
  const exposure = useApi<FleetExposure>('/exposure');
  useLiveRefresh(exposure.reload, ['checkin', 'audit']);
  const e = exposure.data;
  return (
    <Card title="Fleet exposure" actions={<Link href="/cves">CVEs →</Link>}>
      {e === undefined ? (
        exposure.error ? (
          <Problem error={exposure.error} what="Exposure" />
        ) : (
          <Loading />
        )
      ) : (
        <div id="exposure">
          <p class="lead">
            <strong data-value={e.counts.total} data-testid="exposure-total">
              {e.counts.total}
            </strong>{' '}
            open (host, CVE) exposures on {e.hosts} hosts; <strong data-testid="mitigated">{e.mitigated}</strong> fixed
            live by patches.
            {e.unevaluated > 0 && <span class="warn-text"> {e.unevaluated} host(s) could not be evaluated.</span>}
          </p>
          <SeverityBars counts={e.counts} hosts={e.hostsExposed} />
        </div>
      )}
    </Card>
  );
}

function ComplianceCard(): JSX.Element {
  const report = useApi<ComplianceReport>('/reports/compliance?format=json');
  useLiveRefresh(report.reload, ['checkin']);
  const r = report.data;
  return (
    <Card title="Compliance" actions={<Link href="/compliance">Details →</Link>}>
      {r === undefined ? (
        report.error ? (
          <Problem error={report.error} what="Compliance" />
        ) : (
          <Loading />
        )
      ) : (
        <div class="stats" id="compliance-stats">
          <Stat
            label="Compliant hosts"
            value={`${r.summary.compliantHosts}/${r.summary.hosts}`}
            name="compliant"
            tone={r.summary.compliantHosts === r.summary.hosts ? 'good' : 'warn'}
          />
          <Stat
            label="SLA breaches"
            value={r.summary.openBreaches}
            name="breaches"
            tone={r.summary.openBreaches > 0 ? 'bad' : 'good'}
            href="/compliance"
          />
          <Stat
            label="Due soon"
            value={r.summary.upcoming}
            name="upcoming"
            tone={r.summary.upcoming > 0 ? 'warn' : 'plain'}
            href="/compliance"
          />
          <Stat
            label="Mean days to fix"
            value={r.summary.meanDaysToRemediate === null ? '—' : r.summary.meanDaysToRemediate.toFixed(1)}
            name="mttr"
          />
        </div>
      )}
    </Card>
  );
}

function HistoryCard(): JSX.Element {
  const [series, setSeries] = useState<Series[] | undefined>();
  const [error, setError] = useState<unknown>();
  const load = (): void => {
    getText('/reports/compliance?format=csv').then((csv) => setSeries(exposureHistory(csv)), setError);
  };
  useEffect(load, []);
  useLiveRefresh(load, ['checkin']);
  return (
    <Card title={`Exposure over ${HISTORY_DAYS} days (CVEs under SLA)`}>
      {series === undefined ? (
        error !== undefined ? (
          <Problem error={error} what="Exposure history" />
        ) : (
          <Loading />
        )
      ) : (
        <TimeChart series={series} label="open exposure windows per day" />
      )}
    </Card>
  );
}

function ActivityCard(): JSX.Element {
  const audit = useApi<AuditEntry[]>('/audit?limit=40');
  const [items, setItems] = useState<ActivityItem[]>([]);
  useEffect(() => {
    if (audit.data === undefined) return;
    const initial = audit.data.map(describeAudit).filter((x): x is ActivityItem => x !== undefined);
    setItems((now) => merge(now, initial));
  }, [audit.data]);
  useEffect(
    () =>
      live.subscribe((e) => {
        const item = describeLive(e);
        if (item !== undefined) setItems((now) => merge(now, [item]));
      }),
    [],
  );
  return (
    <Card title="Live activity">
      {audit.error !== undefined && <Problem error={audit.error} />}
      {items.length === 0 ? (
        <Empty>Nothing yet: releases, promotions, applies and exploit attempts appear here as they happen.</Empty>
      ) : (
        <ol class="activity" id="activity" aria-live="polite">
          {items.map((i) => (
            <li key={i.id} class={`act act-${i.kind}`} data-kind={i.kind}>
              <span class="act-kind">{i.kind}</span>
              <span class="act-text">{i.href === undefined ? i.text : <Link href={i.href}>{i.text}</Link>}</span>
              <time dateTime={i.at} title={when(i.at)}>
                {ago(i.at)}
                {i.who !== undefined && <span class="muted"> · {i.who}</span>}
              </time>
            </li>
          ))}
        </ol>
      )}
    </Card>
  );
}

function merge(now: ActivityItem[], more: ActivityItem[]): ActivityItem[] {
  const seen = new Set(now.map((i) => i.id));
  const all = [...now, ...more.filter((i) => !seen.has(i.id))];
  all.sort((a, b) => (a.at < b.at ? 1 : a.at > b.at ? -1 : 0));
  return all.slice(0, ACTIVITY_LINES);
}

export function Overview(props: { session: SessionInfo }): JSX.Element {
  return (
    <div class="page">
      <h1>Overview</h1>
      <HostsCard session={props.session} />
      <div class="grid2">
        <ExposureCard />
        <ComplianceCard />
      </div>
      <div class="grid2">
        <HistoryCard />
        <ActivityCard />
      </div>
    </div>
  );
}
