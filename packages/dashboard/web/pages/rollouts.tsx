import type { JSX } from 'preact';
import type { FeedLevel, FeedRecord, HaltRecord, PatchRecord, PromotionRule } from '@livegraft/protocol';
import type { DashboardRollouts, RolloutHealth } from '@livegraft/protocol/dashboard';
import { call, canOperate, type SessionInfo } from '../api.ts';
import { shortKernel } from '../activity.ts';
import { Progress } from '../charts.tsx';
import { useApi } from '../data.ts';
import { FixList } from '../fixes.tsx';
import { ago, duration, pct, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Link } from '../router.tsx';
import { act, Badge, Card, Empty, Loading, Problem } from '../ui.tsx';

/** Feeds in promotion order: each chain from a feed nothing promotes into, then any left over. */
function ordered(feeds: FeedRecord[]): FeedRecord[] {
  const byName = new Map(feeds.map((f) => [f.name, f]));
  const targets = new Set(feeds.map((f) => f.promotesTo).filter((x) => x !== null));
  const out: FeedRecord[] = [];
  const seen = new Set<string>();
  for (const start of feeds.filter((f) => !targets.has(f.name))) {
    let f: FeedRecord | undefined = start;
    while (f !== undefined && !seen.has(f.name)) {
      seen.add(f.name);
      out.push(f);
      f = f.promotesTo === null ? undefined : byName.get(f.promotesTo);
    }
  }
  return [...out, ...feeds.filter((f) => !seen.has(f.name))];
}

/** The feed's hosts on one kernel build against its level, counted on the server (held: kept below it by their ignore-list). */
type Health = Pick<RolloutHealth, 'total' | 'applied' | 'failed' | 'heldCount' | 'held'>;

const NO_HOSTS: Health = { total: 0, applied: 0, failed: 0, heldCount: 0, held: [] };

function health(r: DashboardRollouts, feed: string, kernelId: string): Health {
  return r.groups.find((g) => g.feed === feed && g.kernelId === kernelId) ?? NO_HOSTS;
}

/** Each condition of the feed's promotion rule with the number it is measured against. */
function Gate(props: { rule: PromotionRule | null; level: FeedLevel; h: Health; to: string | null }): JSX.Element {
  const { rule, level, h, to } = props;
  if (to === null) return <span class="muted">last feed</span>;
  if (rule === null) return <span class="muted">manual promotion only</span>;
  const now = Date.now();
  const inFeed = (now - Date.parse(level.setAt)) / 1000;
  const healthy = level.healthySince === null ? 0 : (now - Date.parse(level.healthySince)) / 1000;
  const percent = h.total === 0 ? 0 : (100 * h.applied) / h.total;
  const conds: [string, boolean][] = [];
  if (rule.afterSec !== undefined)
    conds.push([`in feed ${duration(inFeed)} / ${duration(rule.afterSec)}`, inFeed >= rule.afterSec]);
  if (rule.minHosts !== undefined)
    conds.push([`applied ${h.applied} / ${rule.minHosts} hosts`, h.applied >= rule.minHosts]);
  if (rule.minPercent !== undefined)
    conds.push([`applied ${Math.round(percent)} % / ${rule.minPercent} %`, percent >= rule.minPercent]);
  if (rule.healthySec !== undefined)
    conds.push([`healthy ${duration(healthy)} / ${duration(rule.healthySec)}`, healthy >= rule.healthySec]);
  if (level.haltedAt !== null) conds.push(['not halted', false]);
  return (
    <ul class="gate" aria-label={`promotion to ${to}`}>
      {conds.map(([text, ok]) => (
        <li key={text} class={ok ? 'ok' : 'wait'}>
          <span aria-hidden="true">{ok ? '✓' : '…'}</span> {text}
        </li>
      ))}
      <li class="muted">→ {to}</li>
    </ul>
  );
}

function KernelCard(props: {
  kernelId: string;
  release: string;
  levels: PatchRecord[];
  feeds: FeedRecord[];
  rollouts: DashboardRollouts;
  halts: HaltRecord[];
  operate: boolean;
  reload: () => void;
}): JSX.Element {
  const { kernelId, feeds, rollouts, operate, reload } = props;
  const halted = new Map(props.halts.filter((x) => x.kernelId === kernelId).map((x) => [x.level, x]));
  const published = props.levels.filter((p) => p.published).sort((a, b) => b.level - a.level);
  const kname = `${props.release} (${shortKernel(kernelId)})`;

  const halt = (level: number): void =>
    void act(
      {
        title: `Halt level ${level} of ${kname}?`,
        body: (
          <p>Hosts not on level {level} yet stay where they are, and promotion skips it, until someone resumes it.</p>
        ),
        confirmLabel: 'Halt rollout',
        danger: true,
      },
      () => call('POST', '/halts', { kernelId, level, reason: 'halted from the dashboard' }),
      reload,
      `Level ${level} halted`,
    );
  const resume = (level: number): void =>
    void act(
      {
        title: `Resume level ${level} of ${kname}?`,
        body: <p>Feeds on level {level} deliver it again and promotion may move it on.</p>,
        confirmLabel: 'Resume',
      },
      () => call('DELETE', `/halts/${kernelId}/${level}`),
      reload,
      `Level ${level} resumed`,
    );

  return (
    <Card title={`Kernel ${props.release}`} id={`kernel-${kernelId.slice(0, 12)}`}>
      <p class="muted small mono">{kernelId}</p>
      <h3>Published levels</h3>
      {published.length === 0 ? (
        <Empty>Nothing published for this kernel build.</Empty>
      ) : (
        <ul class="levels">
          {published.map((p) => {
            const stop = halted.get(p.level);
            return (
              <li key={p.level} data-level={p.level}>
                <strong>Level {p.level}</strong> <span class="muted">{when(p.publishedAt)}</span>{' '}
                {p.cves.map((c) => (
                  <Link key={c} href={`/cves/${c}`} class="cve">
                    {c}
                  </Link>
                ))}
                {stop !== undefined && (
                  <Badge tone="bad" title={stop.reason}>
                    halted {ago(stop.at)}: {stop.reason}
                  </Badge>
                )}
                {operate &&
                  (stop === undefined ? (
                    <button
                      type="button"
                      class="button small danger-outline"
                      data-action="halt"
                      onClick={() => halt(p.level)}
                    >
                      Halt
                    </button>
                  ) : (
                    <button type="button" class="button small" data-action="resume" onClick={() => resume(p.level)}>
                      Resume
                    </button>
                  ))}
                <FixList fixes={p.fixes} skipped={p.skipped} />
              </li>
            );
          })}
        </ul>
      )}
      <h3>Feeds</h3>
      <div class="table-wrap">
        <table class="feeds" aria-label={`feeds for ${kname}`}>
          <thead>
            <tr>
              <th>Feed</th>
              <th class="num">Level</th>
              <th>Hosts on it</th>
              <th>Promotion gate</th>
              {operate && <th>Actions</th>}
            </tr>
          </thead>
          <tbody>
            {feeds.map((f) => {
              const fl = f.levels.find((l) => l.kernelId === kernelId);
              const pin = f.pins.find((p) => p.kernelId === kernelId || p.kernelId === null);
              const level = fl?.level ?? 0;
              const h = health(rollouts, f.name, kernelId);
              const next = f.promotesTo === null ? undefined : feeds.find((x) => x.name === f.promotesTo);
              const nextLevel = next?.levels.find((l) => l.kernelId === kernelId)?.level ?? 0;
              const canPromote = fl !== undefined && next !== undefined && fl.level > nextLevel && fl.haltedAt === null;
              const promote = (): void =>
                void act(
                  {
                    title: `Promote level ${level} from ${f.name} to ${f.promotesTo ?? ''}?`,
                    body: (
                      <p>
                        {next?.hostCount ?? 0} host(s) in {f.promotesTo} on {kname} move from level {nextLevel} to level{' '}
                        {level}. Currently {h.applied} of {h.total} host(s) in {f.name} run it, {h.failed} failed.
                      </p>
                    ),
                    confirmLabel: `Promote to ${f.promotesTo ?? ''}`,
                  },
                  () => call('POST', `/feeds/${f.name}/promote`, { kernelId }),
                  reload,
                  `Level ${level} promoted to ${f.promotesTo ?? ''}`,
                );
              const pinIt = (): void =>
                void act(
                  {
                    title: `Pin feed ${f.name} at level ${level}?`,
                    body: (
                      <p>
                        Hosts in {f.name} on {kname} stay on level {level} even if a newer level is published or
                        promoted, until unpinned.
                      </p>
                    ),
                    confirmLabel: 'Pin feed',
                  },
                  () => call('PUT', `/feeds/${f.name}/pin`, { kernelId, level }),
                  reload,
                  `${f.name} pinned at level ${level}`,
                );
              const unpin = (): void =>
                void act(
                  {
                    title: `Unpin feed ${f.name}?`,
                    body: <p>Hosts in {f.name} follow the feed's level again.</p>,
                    confirmLabel: 'Unpin',
                  },
                  () => call('DELETE', `/feeds/${f.name}/pin?kernelId=${kernelId}`),
                  reload,
                  `${f.name} unpinned`,
                );
              const targets = [...new Set([0, ...published.map((p) => p.level)])]
                .filter((l) => l < level)
                .sort((a, b) => b - a);
              const rollback = (): void => {
                let to =
                  fl?.previousLevel !== undefined && fl.previousLevel < level ? fl.previousLevel : (targets[0] ?? 0);
                void act(
                  {
                    title: `Roll back feed ${f.name} on ${kname}?`,
                    body: (
                      <>
                        <p>
                          {h.total} host(s) in {f.name} go back live (no reboot) from level {level}; level {level} is
                          halted so promotion does not bring it back.
                        </p>
                        <label class="filter">
                          <span>Roll back to level</span>
                          <select
                            data-testid="rollback-level"
                            onChange={(e) => (to = Number((e.target as HTMLSelectElement).value))}
                          >
                            {targets.map((l) => (
                              <option key={l} value={l} selected={l === to}>
                                {l === 0 ? '0 (unload the patch)' : l}
                              </option>
                            ))}
                          </select>
                        </label>
                      </>
                    ),
                    confirmLabel: 'Roll back',
                    danger: true,
                  },
                  () => call('POST', '/rollback', { feed: f.name, kernelId, level: to }),
                  reload,
                  `${f.name} rolled back`,
                );
              };
              return (
                <tr key={f.name} data-feed={f.name}>
                  <td data-label="Feed">
                    <strong>{f.name}</strong>
                    {f.autoPublish && <Badge title="new levels land here when published">auto</Badge>}
                    {pin !== undefined && (
                      <Badge tone="info" title={`pinned by ${pin.createdBy}`}>
                        {pin.level === null ? `pinned before ${when(pin.cutoff)}` : `pinned at ${pin.level}`}
                      </Badge>
                    )}
                    <div class="muted small">{f.hostCount} host(s)</div>
                  </td>
                  <td class="num" data-label="Level">
                    <span class="level" data-level={level}>
                      {level}
                    </span>
                    {fl !== undefined && (
                      <div class="muted small" title={when(fl.setAt)}>
                        {fl.source} {ago(fl.setAt)}
                      </div>
                    )}
                    {fl?.haltedAt !== null && fl?.haltedAt !== undefined && <Badge tone="bad">halted</Badge>}
                  </td>
                  <td data-label="Hosts on it">
                    {h.total === 0 ? (
                      <span class="muted">no host on this kernel</span>
                    ) : (
                      <>
                        <Progress
                          done={h.applied + h.failed}
                          failed={h.failed}
                          total={h.total}
                          threshold={f.promotion?.minPercent}
                          label={`${h.applied} of ${h.total} hosts on level ${level}`}
                        />
                        <div class="small">
                          {h.applied}/{h.total} ({pct(h.applied, h.total)})
                          {h.failed > 0 && <span class="error-text"> · {h.failed} failed</span>}
                          {h.heldCount > 0 && (
                            <span
                              class="warn-text"
                              data-testid="held"
                              title={h.held.map((x) => `${x.hostname}: ${x.ignoredFixes.join(', ')}`).join('\n')}
                            >
                              {' '}
                              · {h.heldCount} held by {h.heldCount === 1 ? 'its' : 'their'} ignore-list (
                              {h.held.map((x) => x.hostname).join(', ')}
                              {h.heldCount > h.held.length && `, and ${h.heldCount - h.held.length} more`})
                            </span>
                          )}
                        </div>
                      </>
                    )}
                  </td>
                  <td data-label="Promotion gate">
                    {fl === undefined ? (
                      <span class="muted">no level yet</span>
                    ) : (
                      <Gate rule={f.promotion} level={fl} h={h} to={f.promotesTo} />
                    )}
                  </td>
                  {operate && (
                    <td class="actions" data-label="Actions">
                      {canPromote && (
                        <button type="button" class="button small primary" data-action="promote" onClick={promote}>
                          Promote → {f.promotesTo}
                        </button>
                      )}
                      {fl !== undefined && level > 0 && pin === undefined && (
                        <button type="button" class="button small" data-action="pin" onClick={pinIt}>
                          Pin
                        </button>
                      )}
                      {pin !== undefined && (
                        <button type="button" class="button small" data-action="unpin" onClick={unpin}>
                          Unpin
                        </button>
                      )}
                      {level > 0 && (
                        <button
                          type="button"
                          class="button small danger-outline"
                          data-action="rollback"
                          onClick={rollback}
                        >
                          Roll back
                        </button>
                      )}
                    </td>
                  )}
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
    </Card>
  );
}

export function Rollouts(props: { session: SessionInfo }): JSX.Element {
  const feeds = useApi<FeedRecord[]>('/feeds');
  const patches = useApi<PatchRecord[]>('/patches');
  const rollouts = useApi<DashboardRollouts>('/dashboard/rollouts');
  const halts = useApi<HaltRecord[]>('/halts');
  const reload = (): void => {
    feeds.reload();
    patches.reload();
    rollouts.reload();
    halts.reload();
  };
  useLiveRefresh(reload);
  const error = feeds.error ?? patches.error ?? rollouts.error ?? halts.error;
  if (
    feeds.data === undefined ||
    patches.data === undefined ||
    rollouts.data === undefined ||
    halts.data === undefined
  ) {
    return (
      <div class="page">
        <h1>Patches &amp; rollouts</h1>
        {error ? <Problem error={error} /> : <Loading />}
      </div>
    );
  }
  const order = ordered(feeds.data);
  const kernels = new Map<string, { release: string; levels: PatchRecord[] }>();
  for (const p of patches.data) {
    const k = kernels.get(p.kernelId) ?? { release: p.release, levels: [] };
    k.levels.push(p);
    kernels.set(p.kernelId, k);
  }
  const operate = canOperate(props.session.role);
  return (
    <div class="page">
      <h1>Patches &amp; rollouts</h1>
      <p class="muted">
        Feed order: {order.map((f) => f.name).join(' → ')}.{' '}
        {operate
          ? 'Every action asks first and is written to the audit log.'
          : 'Your role can look but not change rollouts.'}
      </p>
      {kernels.size === 0 && (
        <Card>
          <Empty>No patch uploaded yet. Build one with livegraft-builder and publish it with the CLI.</Empty>
        </Card>
      )}
      {[...kernels.entries()].map(([kernelId, k]) => (
        <KernelCard
          key={kernelId}
          kernelId={kernelId}
          release={k.release}
          levels={k.levels}
          feeds={order}
          rollouts={rollouts.data ?? { generatedAt: '', groups: [] }}
          halts={halts.data ?? []}
          operate={operate}
          reload={reload}
        />
      ))}
    </div>
  );
}
