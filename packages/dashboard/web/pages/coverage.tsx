import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { CoverageCell, CoverageReport, CoverageState } from '@livegraft/protocol';
import { useApi } from '../data.ts';
import { when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link } from '../router.tsx';
import { Badge, Card, Empty, Loading, Problem, SeverityBadge } from '../ui.tsx';

const TONE: Record<CoverageState, string> = {
  applied: 'good',
  released: 'good',
  validated: 'info',
  built: 'info',
  queued: 'info',
  'fixed-in-build': 'muted',
  'not-affected': 'muted',
  'not-live-patchable': 'warn',
  failed: 'bad',
  'no-fix': 'bad',
};

function cellText(c: CoverageCell): string {
  switch (c.state) {
    case 'applied':
      return `applied ${c.hostsApplied}/${c.hosts}`;
    case 'fixed-in-build':
      return c.version === null ? 'fixed in build' : `fixed in ${c.version}`;
    case 'released':
    case 'validated':
    case 'built':
      return c.level === null ? c.state : `${c.state} L${c.level}`;
    default:
      return c.state;
  }
}

function Cell(props: { cell: CoverageCell }): JSX.Element {
  const c = props.cell;
  const title = [c.fixId === null ? '' : `fix ${c.fixId}`, c.reason ?? ''].filter((x) => x !== '').join(': ');
  return (
    <td data-state={c.state} data-kernel={c.kernelId}>
      <Badge tone={TONE[c.state]} title={title === '' ? undefined : title}>
        {cellText(c)}
      </Badge>
    </td>
  );
}

/** CVE x kernel build: where each CVE that affects the fleet stands on every build it runs. */
export function Coverage(): JSX.Element {
  const report = useApi<CoverageReport>('/coverage');
  useLiveRefresh(report.reload, ['audit', 'checkin']);
  const [all, setAll] = useState(false);
  const data = report.data;
  if (data === undefined) {
    return (
      <div class="page">
        <h1>Coverage</h1>
        {report.error ? <Problem error={report.error} what="Coverage" /> : <Loading />}
      </div>
    );
  }
  const open = (r: CoverageReport['rows'][number]): boolean =>
    r.cells.some((c) => c.state !== 'not-affected' && c.state !== 'fixed-in-build');
  const rows = all ? data.rows : data.rows.filter(open);
  const noFix = data.rows.filter((r) => r.cells.some((c) => c.state === 'no-fix')).length;
  return (
    <div class="page">
      <h1>Coverage</h1>
      <p class="muted">
        Each CVE that affects a kernel build of the fleet, and each CVE of a submitted fix, on every build the fleet
        runs. {data.rows.length} CVEs, {noFix} with no fix on some build. Generated {when(data.generatedAt)}.
      </p>
      <Card
        title="CVE × kernel build"
        actions={
          <label class="small">
            <input type="checkbox" checked={all} onChange={() => setAll(!all)} /> show CVEs fixed or absent everywhere
          </label>
        }
      >
        {data.kernels.length === 0 ? (
          <Empty>No host has enrolled yet: there is no kernel build to cover.</Empty>
        ) : rows.length === 0 ? (
          <Empty>Nothing open: every CVE is fixed in the build or does not reach it.</Empty>
        ) : (
          <div class="table-wrap">
            <table aria-label="coverage matrix" class="coverage">
              <thead>
                <tr>
                  <th>CVE</th>
                  <th>Severity</th>
                  {data.kernels.map((k) => (
                    <th key={k.kernelId} title={k.kernelId}>
                      {k.release}
                      <span class="muted small">
                        {' '}
                        {k.packageVersion ?? k.kernelId.slice(0, 8)} · {k.hosts} host{k.hosts === 1 ? '' : 's'}
                      </span>
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {rows.slice(0, 500).map((r) => (
                  <tr key={r.cve} data-cve={r.cve}>
                    <td>
                      <Link href={`/cves/${r.cve}`}>{r.cve}</Link>
                    </td>
                    <td>{r.severity === null ? '—' : <SeverityBadge severity={r.severity} />}</td>
                    {r.cells.map((c) => (
                      <Cell key={c.kernelId} cell={c} />
                    ))}
                  </tr>
                ))}
              </tbody>
            </table>
            {rows.length > 500 && <p class="more">Showing 500 of {rows.length}; the API and the CLI give all.</p>}
          </div>
        )}
      </Card>
    </div>
  );
}
