import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { ComplianceReport, CveHosts } from '@livegraft/protocol';
import { useApi } from '../data.ts';
import { when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link, navigate } from '../router.tsx';
import { Card, Empty, Loading, Problem, SeverityBadge } from '../ui.tsx';

const CVE_ID = /^CVE-[0-9]{4}-[0-9]{4,7}$/;

function HostList(props: {
  title: string;
  testid: string;
  rows: { hostId: string; hostname: string; release: string; extra?: string }[];
}): JSX.Element {
  return (
    <Card title={`${props.title} (${props.rows.length})`}>
      {props.rows.length === 0 ? (
        <Empty>None.</Empty>
      ) : (
        <ul class="hostlist" data-testid={props.testid}>
          {props.rows.map((r) => (
            <li key={r.hostId}>
              <Link href={`/hosts/${encodeURIComponent(r.hostId)}`}>{r.hostname}</Link>{' '}
              <code class="muted">{r.release}</code>
              {r.extra !== undefined && <span class="muted"> · {r.extra}</span>}
            </li>
          ))}
        </ul>
      )}
    </Card>
  );
}

function CveDetail(props: { id: string }): JSX.Element {
  const cve = useApi<CveHosts>(`/cves/${props.id}`);
  useLiveRefresh(cve.reload, ['checkin', 'audit']);
  const c = cve.data;
  if (c === undefined) return cve.error ? <Problem error={cve.error} what="CVE search" /> : <Loading />;
  return (
    <>
      <Card>
        <h2 class="cve-title">
          {c.id} <SeverityBadge severity={c.severity} />{' '}
          {c.cvssScore !== null && <span class="muted">CVSS {c.cvssScore}</span>}
        </h2>
        <p>{c.known ? (c.title ?? '') : 'Not in the server’s CVE dataset: no kernel is known to be affected.'}</p>
        {c.published !== null && <p class="muted small">Published {when(c.published)}</p>}
      </Card>
      <div class="grid3">
        <HostList title="Exposed" testid="exposed" rows={c.exposed} />
        <HostList
          title="Fixed live"
          testid="fixed-live"
          rows={c.fixedLive.map((r) => ({ ...r, extra: `level ${r.level}` }))}
        />
        <HostList
          title="Fixed by upgrade"
          testid="fixed-upgrade"
          rows={c.fixedByUpgrade.map((r) => ({ ...r, extra: when(r.at) }))}
        />
      </div>
    </>
  );
}

/** CVEs with open windows under the SLA, as quick links. */
function OpenUnderSla(): JSX.Element | null {
  const report = useApi<ComplianceReport>('/reports/compliance?format=json');
  const r = report.data;
  if (r === undefined) return null;
  const ids = new Map<string, string>();
  for (const w of [...r.breaches, ...r.upcoming]) ids.set(w.cve, w.severity);
  if (ids.size === 0) return null;
  return (
    <Card title="Open CVEs under SLA">
      <p class="cves">
        {[...ids.entries()].slice(0, 60).map(([id, sev]) => (
          <Link key={id} href={`/cves/${id}`} class={`cve sev-border-${sev}`}>
            {id}
          </Link>
        ))}
      </p>
    </Card>
  );
}

export function Cves(props: { id: string | undefined }): JSX.Element {
  const [text, setText] = useState(props.id ?? '');
  const [bad, setBad] = useState(false);
  const submit = (e: Event): void => {
    e.preventDefault();
    const id = text.trim().toUpperCase();
    if (!CVE_ID.test(id)) {
      setBad(true);
      return;
    }
    setBad(false);
    navigate(`/cves/${id}`);
  };
  return (
    <div class="page">
      <h1>CVEs</h1>
      <Card>
        <form class="search" onSubmit={submit} role="search">
          <label for="cve">CVE</label>
          <input
            id="cve"
            placeholder="CVE-2024-1086"
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
          />
          <button class="button primary" type="submit">
            Search
          </button>
        </form>
        {bad && (
          <p class="error" role="alert">
            A CVE id looks like CVE-2024-1086.
          </p>
        )}
      </Card>
      {props.id !== undefined && CVE_ID.test(props.id) ? <CveDetail key={props.id} id={props.id} /> : <OpenUnderSla />}
    </div>
  );
}
