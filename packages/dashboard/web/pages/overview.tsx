import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type {
  ActivityItem as ServerItem,
  DashboardActivity,
  DashboardCompliance,
  DashboardOverview,
} from '@livegraft/protocol/dashboard';
import { mayRead, type SessionInfo } from '../api.ts';
import { describeItem, describeLive, type ActivityItem } from '../activity.ts';
import { SeverityBars, TimeChart } from '../charts.tsx';
import { useApi, type Loaded } from '../data.ts';
import { HOST_STATUSES, STATUS_HELP, STATUS_LABEL } from '../fleet.ts';
import { ago, when } from '../format.ts';
import { live, useLiveRefresh } from '../live.ts';
import { Link } from '../router.tsx';
import { Card, Empty, Loading, Problem, Stat, statusTone } from '../ui.tsx';

/** Lines kept in the activity list. */
const ACTIVITY_LINES = 30;

function HostsCard(props: { overview: Loaded<DashboardOverview> }): JSX.Element {
  const o = props.overview;
  if (o.data === undefined) return <Card title="Hosts">{o.error ? <Problem error={o.error} /> : <Loading />}</Card>;
  const counts = o.data.hosts;
  return (
    <Card title="Hosts" actions={<Link href="/hosts">All hosts →</Link>}>
      <div class="stats" id="host-stats">
        <Stat label="Hosts" value={counts.total} name="total" href="/hosts" />
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

function ExposureCard(props: { overview: Loaded<DashboardOverview> }): JSX.Element {
  const o = props.overview;
  const e = o.data?.exposure ?? undefined;
  return (
    <Card title="Fleet exposure" actions={<Link href="/cves">CVEs →</Link>}>
      {e === undefined ? (
        o.error ? (
          <Problem error={o.error} what="Exposure" />
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

function ComplianceCard(props: { compliance: Loaded<DashboardCompliance> }): JSX.Element {
  const c = props.compliance;
  const r = c.data;
  return (
    <Card title="Compliance" actions={<Link href="/compliance">Details →</Link>}>
      {r === undefined ? (
        c.error ? (
          <Problem error={c.error} what="Compliance" />
        ) : (
          <Loading />
        )
      ) : (
        <>
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
          <p class="muted small" data-testid="compliance-as-of">
            Computed{' '}
            <time dateTime={r.generatedAt} title={when(r.generatedAt)}>
              {ago(r.generatedAt)}
            </time>
          </p>
        </>
      )}
    </Card>
  );
}

function HistoryCard(props: { compliance: Loaded<DashboardCompliance> }): JSX.Element {
  const c = props.compliance;
  const series = c.data?.history.map((s) => ({
    label: s.label,
    tone: s.severities.length === 1 ? `sev-${s.severities[0] ?? 'medium'}` : 'sev-medium',
    points: s.points.map((p) => ({ t: Date.parse(p.t), v: p.v })),
  }));
  return (
    <Card title={`Exposure over ${c.data?.historyDays ?? 60} days (CVEs under SLA)`}>
      {series === undefined ? (
        c.error !== undefined ? (
          <Problem error={c.error} what="Exposure history" />
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
  const recent = useApi<DashboardActivity>(`/dashboard/activity?limit=${ACTIVITY_LINES}`);
  const [items, setItems] = useState<ActivityItem[]>([]);
  useEffect(() => {
    if (recent.data === undefined) return;
    const initial = recent.data.items
      .map((i: ServerItem) => describeItem(i))
      .filter((x): x is ActivityItem => x !== undefined);
    setItems((now) => merge(now, initial));
  }, [recent.data]);
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
      {recent.error !== undefined && <Problem error={recent.error} />}
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

/** Everything on it comes from the server's summaries (/dashboard/...): kilobytes whatever the fleet's size. */
export function Overview(props: { session: SessionInfo }): JSX.Element {
  const overview = useApi<DashboardOverview>('/dashboard/overview');
  const compliant = mayRead(props.session.role, 'compliance');
  // The host tiles come first: the compliance numbers take longer to compute on a big fleet.
  const compliance = useApi<DashboardCompliance>(
    compliant && overview.data !== undefined ? '/dashboard/compliance' : null,
  );
  useLiveRefresh(overview.reload, ['checkin', 'audit']);
  useLiveRefresh(compliance.reload, ['checkin']);
  return (
    <div class="page">
      <h1>Overview</h1>
      <HostsCard overview={overview} />
      {compliant && (
        <div class="grid2">
          <ExposureCard overview={overview} />
          <ComplianceCard compliance={compliance} />
        </div>
      )}
      <div class="grid2">
        {compliant && <HistoryCard compliance={compliance} />}
        <ActivityCard />
      </div>
    </div>
  );
}
