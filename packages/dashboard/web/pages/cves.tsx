import type { JSX } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import type { CveHosts } from '@livegraft/protocol';
import type { CvePage } from '@livegraft/protocol/dashboard';
import { useApi } from '../data.ts';
import { ago, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link, navigate } from '../router.tsx';
import { Card, Empty, Loading, Pager, Problem, SeverityBadge } from '../ui.tsx';

const CVE_ID = /^CVE-[0-9]{4}-[0-9]{4,7}$/;
/** What the open-CVE search takes: part of a CVE id. */
const SEARCH = /^[A-Z0-9-]{0,32}$/;

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

/** CVEs listed per page. */
const PAGE = 50;

/** Every CVE with an open window under the SLA, paged and searched on the server. */
function OpenUnderSla(props: { q: string }): JSX.Element {
  const [offset, setOffset] = useState(0);
  useEffect(() => setOffset(0), [props.q]);
  const query = new URLSearchParams({ offset: String(offset), limit: String(PAGE) });
  if (props.q !== '') query.set('q', props.q);
  const page = useApi<CvePage>(`/dashboard/cves?${query.toString()}`);
  useLiveRefresh(page.reload, ['checkin']);
  const p = page.data;
  if (p === undefined) return page.error ? <Problem error={page.error} what="Open CVEs" /> : <Loading />;
  const last = Math.min(p.offset + p.items.length, p.matching);
  return (
    <Card title={`Open CVEs under SLA (${p.total})`}>
      <p class="muted small" data-testid="cve-count" data-total={p.total} data-matching={p.matching}>
        {p.total} CVE{p.total === 1 ? '' : 's'} with open SLA windows
        {props.q !== '' && `, ${p.matching} matching “${props.q}”`}
        {p.matching > 0 && ` · showing ${p.offset + 1}–${last}`}
      </p>
      {p.items.length === 0 ? (
        <Empty>{p.total === 0 ? 'No open exposure under the SLA.' : 'No open CVE matches.'}</Empty>
      ) : (
        <div class="table-wrap">
          <table aria-label="open CVEs">
            <thead>
              <tr>
                <th>CVE</th>
                <th>Severity</th>
                <th class="num">CVSS</th>
                <th class="num">Hosts</th>
                <th class="num">Past due</th>
                <th>Next due</th>
              </tr>
            </thead>
            <tbody>
              {p.items.map((c) => (
                <tr key={c.id} data-cve={c.id}>
                  <td>
                    <Link href={`/cves/${c.id}`}>{c.id}</Link>
                  </td>
                  <td>
                    <SeverityBadge severity={c.severity} />
                  </td>
                  <td class="num">{c.cvssScore ?? '—'}</td>
                  <td class="num">{c.hosts}</td>
                  <td class="num">{c.breached}</td>
                  <td title={when(c.nextDueAt)}>{ago(c.nextDueAt)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <Pager
        label="CVE pages"
        offset={p.offset}
        shown={p.items.length}
        matching={p.matching}
        pageSize={PAGE}
        onOffset={setOffset}
      />
    </Card>
  );
}

export function Cves(props: { id: string | undefined }): JSX.Element {
  const [text, setText] = useState(props.id ?? '');
  const [q, setQ] = useState('');
  const [bad, setBad] = useState(false);
  const submit = (e: Event): void => {
    e.preventDefault();
    const id = text.trim().toUpperCase();
    if (CVE_ID.test(id)) {
      setBad(false);
      navigate(`/cves/${id}`);
      return;
    }
    // Part of an id searches the open CVEs; anything else is not a CVE id.
    if (!SEARCH.test(id)) {
      setBad(true);
      return;
    }
    setBad(false);
    setQ(id);
    if (props.id !== undefined) navigate('/cves');
  };
  return (
    <div class="page">
      <h1>CVEs</h1>
      <Card>
        <form class="search" onSubmit={submit} role="search">
          <label for="cve">CVE</label>
          <input
            id="cve"
            placeholder="CVE-2024-1086, or part of one"
            value={text}
            onInput={(e) => setText((e.target as HTMLInputElement).value)}
          />
          <button class="button primary" type="submit">
            Search
          </button>
        </form>
        {bad && (
          <p class="error" role="alert">
            A CVE id looks like CVE-2024-1086; search with part of one (2024-10, CVE-2023).
          </p>
        )}
      </Card>
      {props.id !== undefined && CVE_ID.test(props.id) ? (
        <CveDetail key={props.id} id={props.id} />
      ) : (
        <OpenUnderSla q={q} />
      )}
    </div>
  );
}
