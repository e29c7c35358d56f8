import type { JSX } from 'preact';
import type {
  AuditEntry,
  ExposureWindow,
  HostExposure,
  HostRecord,
  PatchRecord,
  TripwireRecord,
} from '@livegraft/protocol';
import type { ApplyRecord, HostHistory } from '@livegraft/protocol/dashboard';
import { call, canOperate, mayRead, type SessionInfo } from '../api.ts';
import { describeHostChanges } from '../activity.ts';
import { useApi } from '../data.ts';
import { FixList } from '../fixes.tsx';
import { hostStatus } from '../fleet.ts';
import { ago, duration, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link } from '../router.tsx';
import { act, Badge, Card, Empty, Loading, Problem, SeverityBadge, StatusBadge, Table } from '../ui.tsx';
import { UserspaceCard } from '../userspace.tsx';

interface Moment {
  at: string;
  kind: 'apply' | 'failure' | 'rollback' | 'tripwire' | 'kernel' | 'fixed' | 'change';
  text: JSX.Element | string;
}

function applyMoment(a: Omit<ApplyRecord, 'hostId' | 'hostname' | 'kernelId'>): Moment {
  const kind = !a.ok ? 'failure' : a.action === 'rollback' ? 'rollback' : 'apply';
  const what = a.ok
    ? `${a.action === 'apply' ? 'Applied' : a.action === 'rollback' ? 'Rolled back to' : a.action === 'boot' ? 'Re-applied at boot' : 'Unloaded to'} level ${a.toLevel}`
    : `Failed to ${a.action} level ${a.toLevel}${a.code === undefined ? '' : ` (${a.code})`}`;
  return {
    at: a.at,
    kind,
    text: `${what} from level ${a.fromLevel} in ${Math.round(a.durationMs)} ms${a.message === undefined ? '' : `: ${a.message}`}`,
  };
}

/** A change someone made to the host, in words. */
function changeText(e: AuditEntry): string {
  const d = (typeof e.details === 'object' ? e.details : null) as Record<string, unknown> | null;
  const by = ` by ${e.actor.name}`;
  if (e.action === 'host.update') return `${describeHostChanges(d)}${by}`.replace(/^./, (c) => c.toUpperCase());
  if (e.action === 'host.revoke') return `Host token revoked${by}`;
  const level = typeof d?.['level'] === 'number' ? ` at level ${d['level']}` : '';
  if (e.action.startsWith('pin.')) return `Pinned${level}${by}`;
  if (e.action.startsWith('unpin.')) return `Unpinned${by}`;
  if (e.action.startsWith('rollback.')) return `Rolled back${level}${by}`;
  return `${e.action}${by}`;
}

function timeline(
  host: HostRecord,
  windows: ExposureWindow[],
  trips: TripwireRecord[],
  history: HostHistory | undefined,
): Moment[] {
  const out: Moment[] = [{ at: host.enrolledAt, kind: 'change', text: `Enrolled in ${host.feed ?? 'its feed'}` }];
  const applies = history?.applies ?? [];
  for (const a of applies) out.push(applyMoment(a));
  // Hosts whose last apply predates the apply history still show it.
  const last = host.lastApply;
  if (last !== null && !applies.some((a) => Date.parse(a.at) === Date.parse(last.at) && a.action === last.action))
    out.push(applyMoment(last));
  for (const e of host.kernelEvents ?? [])
    out.push({ at: e.at, kind: 'kernel', text: `Kernel ${e.kind}: ${e.message.slice(0, 200)}` });
  for (const t of trips) {
    out.push({
      at: t.at,
      kind: 'tripwire',
      text: (
        <>
          Exploit attempt on <Link href={`/cves/${t.cve}`}>{t.cve}</Link> blocked: {t.comm} (pid {t.pid}, uid {t.uid})
          {t.level !== null && ` by level ${t.level}`}
        </>
      ),
    });
  }
  const closed = new Map<string, { at: string; how: string; cves: string[] }>();
  for (const w of windows) {
    if (w.end === null || w.closedBy === null) continue;
    const how = w.closedBy === 'live-patch' ? `level ${w.fixedByLevel ?? '?'} (live patch)` : 'a kernel upgrade';
    const key = `${w.end} ${how}`;
    const g = closed.get(key) ?? { at: w.end, how, cves: [] };
    g.cves.push(w.cve);
    closed.set(key, g);
  }
  for (const g of closed.values()) {
    out.push({
      at: g.at,
      kind: 'fixed',
      text: `${g.cves.length} CVE${g.cves.length === 1 ? '' : 's'} closed by ${g.how}: ${g.cves.slice(0, 6).join(', ')}${g.cves.length > 6 ? '…' : ''}`,
    });
  }
  for (const e of history?.changes ?? []) {
    if (e.action === 'host.enroll') continue;
    out.push({ at: e.at, kind: e.action.startsWith('rollback') ? 'rollback' : 'change', text: changeText(e) });
  }
  return out.sort((x, y) => (x.at < y.at ? 1 : x.at > y.at ? -1 : 0));
}

export function HostPage(props: { id: string; session: SessionInfo }): JSX.Element {
  const id = encodeURIComponent(props.id);
  const host = useApi<HostRecord>(`/hosts/${id}`);
  // Compliance parts only for a role that may read them (no request the server would refuse).
  const compliant = mayRead(props.session.role, 'compliance');
  const exposure = useApi<HostExposure>(compliant ? `/hosts/${id}/exposure` : null);
  const windows = useApi<ExposureWindow[]>(compliant ? `/hosts/${id}/windows` : null);
  const trips = useApi<TripwireRecord[]>(compliant ? `/hosts/${id}/tripwires` : null);
  const history = useApi<HostHistory>(`/dashboard/hosts/${id}/history`);
  const patches = useApi<PatchRecord[]>(host.data === undefined ? null : `/patches?kernelId=${host.data.kernelId}`);
  const reload = (): void => {
    host.reload();
    exposure.reload();
    windows.reload();
    trips.reload();
    history.reload();
  };
  useLiveRefresh(reload);

  const h = host.data;
  if (h === undefined) {
    return <div class="page">{host.error ? <Problem error={host.error} /> : <Loading />}</div>;
  }
  const status = hostStatus(h, props.session.checkinIntervalSec);
  const applied = patches.data?.find((p) => p.level === h.appliedLevel);
  const hostPins = (h.pins ?? []).filter((p) => p.scope === 'host');
  const operate = canOperate(props.session.role);
  const pin = (): void =>
    void act(
      {
        title: `Pin ${h.hostname} at level ${h.appliedLevel}?`,
        body: <p>The host stays on level {h.appliedLevel} of its kernel whatever its feed does, until unpinned.</p>,
        confirmLabel: 'Pin host',
      },
      () => call('PUT', `/hosts/${id}/pin`, { kernelId: h.kernelId, level: h.appliedLevel }),
      reload,
      `${h.hostname} pinned at level ${h.appliedLevel}`,
    );
  const unpin = (): void =>
    void act(
      {
        title: `Unpin ${h.hostname}?`,
        body: <p>The host follows its feed ({h.feed}) again.</p>,
        confirmLabel: 'Unpin',
      },
      () => call('DELETE', `/hosts/${id}/pin`),
      reload,
      `${h.hostname} unpinned`,
    );
  const moments = timeline(h, windows.data ?? [], trips.data ?? [], history.data);
  // The agent says so after the server told it; the server knows it when no level is published for the kernel.
  const unsupported =
    h.state === 'unsupported' || (patches.data !== undefined && !patches.data.some((p) => p.published));
  return (
    <div class="page">
      <p class="crumbs">
        <Link href="/hosts">Hosts</Link> /
      </p>
      <h1>
        {h.hostname} <StatusBadge status={status} />
      </h1>
      <div class="grid2">
        <Card
          title="Host"
          actions={
            operate && (
              <>
                {h.appliedLevel > 0 && (
                  <button type="button" class="button small" data-action="pin-host" onClick={pin}>
                    Pin here
                  </button>
                )}
                {hostPins.length > 0 && (
                  <button type="button" class="button small" data-action="unpin-host" onClick={unpin}>
                    Unpin
                  </button>
                )}
              </>
            )
          }
        >
          <dl class="facts">
            <dt>Effective kernel</dt>
            <dd>
              <code data-testid="effective-kernel">{h.effectiveRelease}</code>
            </dd>
            <dt>Kernel build</dt>
            <dd>
              <code>{h.release}</code> <span class="muted mono">{h.kernelId.slice(0, 12)}</span>
            </dd>
            <dt>Kernel support</dt>
            <dd data-testid="kernel-support">
              {unsupported ? (
                <span class="warn-text">unsupported kernel: no live patch is published for this build</span>
              ) : patches.data === undefined ? (
                '…'
              ) : (
                'live patches published'
              )}
            </dd>
            <dt>Applied level</dt>
            <dd>
              {h.appliedLevel}
              {h.desired !== undefined && h.desired !== null && (
                <span class="muted">
                  {' '}
                  (wanted: {h.desired.level} by {h.desired.reason})
                </span>
              )}
            </dd>
            <dt>Feed</dt>
            <dd>{h.feed ?? '—'}</dd>
            <dt>Tags</dt>
            <dd>
              {(h.tags ?? []).length === 0
                ? '—'
                : (h.tags ?? []).map((t) => (
                    <span key={t} class="tag">
                      {t}
                    </span>
                  ))}
            </dd>
            <dt>Pins</dt>
            <dd>
              {(h.pins ?? []).length === 0
                ? '—'
                : (h.pins ?? []).map((p) => (
                    <Badge
                      key={`${p.scope}${p.subject}${p.kernelId ?? ''}`}
                    >{`${p.scope} ${p.subject}: ${p.level ?? `before ${when(p.cutoff)}`}`}</Badge>
                  ))}
            </dd>
            <dt>Ignored fixes</dt>
            <dd data-testid="ignored-fixes">
              {(h.ignore ?? []).length === 0
                ? '—'
                : (h.ignore ?? []).map((f) => (
                    <span key={f} class="tag">
                      {f}
                    </span>
                  ))}
              {(h.desired?.ignoredFixes ?? []).length > 0 && (
                <div class="muted">
                  Held at level {h.desired?.level} by {h.desired?.ignoredFixes?.join(', ')}
                </div>
              )}
              {(h.desired?.ignoredRunning ?? []).length > 0 && (
                <div class="error-text">
                  Level {h.appliedLevel} already carries {h.desired?.ignoredRunning?.join(', ')}; roll back or pin the
                  host to remove it.
                </div>
              )}
            </dd>
            <dt>Agent</dt>
            <dd>
              {h.agentVersion}, up {h.uptimeSec === null || h.uptimeSec === undefined ? '?' : duration(h.uptimeSec)}
            </dd>
            <dt>Last check-in</dt>
            <dd title={when(h.lastCheckinAt)}>{ago(h.lastCheckinAt)}</dd>
            {h.lastError !== null && (
              <>
                <dt>Last error</dt>
                <dd class="error-text">{h.lastError}</dd>
              </>
            )}
          </dl>
        </Card>
        <Card title={`Applied patch: level ${h.appliedLevel}`}>
          {h.appliedLevel === 0 ? (
            unsupported ? (
              <p class="note" role="note" data-testid="unsupported-kernel">
                Unsupported kernel: the server has no live patch for {h.release} ({h.kernelId.slice(0, 12)}). Build one
                for it with the pipeline, or move the host to a supported kernel.
              </p>
            ) : (
              <Empty>No live patch applied.</Empty>
            )
          ) : applied === undefined ? (
            patches.error ? (
              <Problem error={patches.error} />
            ) : (
              <Loading />
            )
          ) : (
            <>
              <p>
                <code>{applied.name}</code>, published {when(applied.publishedAt)}
              </p>
              <FixList fixes={h.applied?.fixes ?? applied.fixes} skipped={h.applied?.skipped ?? applied.skipped} />
              <p class="cves" data-testid="applied-cves">
                {applied.cves.map((c) => (
                  <Link key={c} href={`/cves/${c}`} class="cve">
                    {c}
                  </Link>
                ))}
              </p>
            </>
          )}
        </Card>
      </div>
      {compliant && (
        <Card title={exposure.data === undefined ? 'Open CVEs' : `Open CVEs (${exposure.data.counts.total})`}>
          {exposure.data === undefined ? (
            exposure.error ? (
              <Problem error={exposure.error} what="Exposure" />
            ) : (
              <Loading />
            )
          ) : exposure.data.effective.length === 0 ? (
            <Empty>No open CVE for this kernel and patch level.</Empty>
          ) : (
            <Table
              label="open CVEs"
              rows={exposure.data.effective}
              rowKey={(c) => c.id}
              initialSort={{ key: 'cvss', desc: true }}
              columns={[
                {
                  key: 'id',
                  label: 'CVE',
                  sort: (c) => c.id,
                  render: (c) => <Link href={`/cves/${c.id}`}>{c.id}</Link>,
                },
                { key: 'sev', label: 'Severity', render: (c) => <SeverityBadge severity={c.severity} /> },
                {
                  key: 'cvss',
                  label: 'CVSS',
                  class: 'num',
                  sort: (c) => c.cvssScore ?? -1,
                  render: (c) => c.cvssScore ?? '—',
                },
                { key: 'title', label: 'Title', render: (c) => c.title },
                { key: 'fixed', label: 'Fixed upstream in', render: (c) => c.fixedIn?.version ?? '—' },
              ]}
            />
          )}
        </Card>
      )}
      <UserspaceCard hostId={h.id} />
      <Card title="Timeline">
        {moments.length === 0 ? (
          <Empty>Nothing recorded yet.</Empty>
        ) : (
          <ol class="timeline" id="timeline">
            {moments.map((m, i) => (
              <li key={`${m.at}${i}`} class={`tl tl-${m.kind}`} data-kind={m.kind}>
                <time dateTime={m.at}>{when(m.at)}</time>
                <span>{m.text}</span>
              </li>
            ))}
          </ol>
        )}
      </Card>
    </div>
  );
}
