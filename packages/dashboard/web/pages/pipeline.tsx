import type { JSX } from 'preact';
import { useState } from 'preact/hooks';
import type { ApiRole, FixBundle, FixRecord, JobRecord, PlanState } from '@livegraft/protocol';
import { API, call, canOperate } from '../api.ts';
import { useApi } from '../data.ts';
import { ago, when } from '../format.ts';
import { useLiveRefresh } from '../live.ts';
import { Badge, Card, Empty, Loading, Problem, Table, toast } from '../ui.tsx';

const PLAN_TONE: Record<PlanState, string> = {
  released: 'good',
  'already-fixed': 'muted',
  'not-affected': 'muted',
  superseded: 'muted',
  'to-build': 'info',
  'not-live-patchable': 'warn',
  failed: 'bad',
  'validation-failed': 'bad',
};

/** A fix directory picked in the browser: fix.json parsed, every other file base64. */
async function bundleOf(files: File[]): Promise<FixBundle> {
  const spec = files.find((f) => f.name === 'fix.json');
  if (spec === undefined) throw new Error('pick the files of one fix directory, fix.json among them');
  let parsed: unknown;
  try {
    parsed = JSON.parse(await spec.text());
  } catch (e) {
    throw new Error(`fix.json is not JSON: ${e instanceof Error ? e.message : String(e)}`, { cause: e });
  }
  const rest = files.filter((f) => f !== spec);
  const encoded = await Promise.all(
    rest.map(async (f) => {
      const bytes = new Uint8Array(await f.arrayBuffer());
      let bin = '';
      for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
      return { name: f.name, content: btoa(bin) };
    }),
  );
  return { spec: parsed as FixBundle['spec'], files: encoded };
}

function Submit(props: { reload: () => void }): JSX.Element {
  const [error, setError] = useState<string | undefined>();
  const [busy, setBusy] = useState(false);
  const onPick = async (e: Event): Promise<void> => {
    const input = e.currentTarget as HTMLInputElement;
    const files = [...(input.files ?? [])];
    if (files.length === 0) return;
    setBusy(true);
    setError(undefined);
    try {
      const fix = await call<FixRecord>('POST', '/fixes', { fix: await bundleOf(files) });
      const toBuild = fix.plan.filter((p) => p.state === 'to-build').length;
      toast(`Fix ${fix.id} submitted: ${toBuild} of ${fix.plan.length} kernel builds to build`);
      props.reload();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
      input.value = '';
    }
  };
  return (
    <Card title="Submit a fix">
      <p class="muted">
        Pick the files of one fix directory: fix.json, the patches or sources it names, and its trigger. The server
        plans it for every kernel build the fleet runs; workers build and validate each level in a VM of that exact
        kernel.
      </p>
      <label class="button">
        {busy ? 'Submitting…' : 'Choose fix files…'}
        <input
          type="file"
          multiple
          name="fix-files"
          aria-label="fix files"
          disabled={busy}
          style={{ display: 'none' }}
          onChange={(e) => void onPick(e)}
        />
      </label>
      {error !== undefined && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </Card>
  );
}

function FixCard(props: { fix: FixRecord }): JSX.Element {
  const f = props.fix;
  return (
    <Card title={`${f.id}: ${f.title}`} id={`fix-${f.id}`}>
      <p class="muted small">
        {f.cves.join(', ')} · submitted <time dateTime={f.submittedAt}>{ago(f.submittedAt)}</time> by {f.submittedBy}
        {f.commits.map((c) => (
          <span key={c.id ?? c.subject}>
            {' '}
            · <code>{c.id?.slice(0, 12) ?? '—'}</code> {c.subject}
          </span>
        ))}
      </p>
      {f.plan.length === 0 ? (
        <Empty>No kernel build in the fleet when it was submitted.</Empty>
      ) : (
        <Table
          label={`plan of ${f.id}`}
          rows={f.plan}
          rowKey={(p) => p.kernelId}
          columns={[
            {
              key: 'release',
              label: 'Kernel build',
              sort: (p) => p.release,
              render: (p) => <span title={p.kernelId}>{p.release}</span>,
            },
            {
              key: 'state',
              label: 'Plan',
              sort: (p) => p.state,
              render: (p) => (
                <span data-plan={p.state}>
                  <Badge tone={PLAN_TONE[p.state]}>{p.state}</Badge>
                </span>
              ),
            },
            { key: 'job', label: 'Job', render: (p) => p.jobState ?? '—' },
            { key: 'level', label: 'Level', class: 'num', render: (p) => p.level ?? '—' },
            { key: 'detail', label: 'Detail', render: (p) => p.version ?? p.reason ?? '' },
          ]}
        />
      )}
    </Card>
  );
}

function Jobs(props: { jobs: JobRecord[] }): JSX.Element {
  return (
    <Table
      label="build jobs"
      rows={props.jobs}
      rowKey={(j) => j.id}
      columns={[
        { key: 'fix', label: 'Fix', sort: (j) => j.fixId, render: (j) => j.fixId },
        { key: 'release', label: 'Kernel build', sort: (j) => j.release, render: (j) => j.release },
        {
          key: 'state',
          label: 'State',
          sort: (j) => j.state,
          render: (j) => `${j.state}${j.outcome === null ? '' : ` (${j.outcome})`}`,
        },
        { key: 'level', label: 'Level', class: 'num', render: (j) => j.level ?? '—' },
        { key: 'tries', label: 'Tries', class: 'num', render: (j) => j.attempts },
        { key: 'worker', label: 'Worker', render: (j) => j.worker ?? '—' },
        {
          key: 'validation',
          label: 'Validation',
          render: (j) =>
            j.validation === null ? (
              '—'
            ) : (
              <span title={j.validation.problems.join('\n')} data-validation={j.validation.result}>
                <Badge tone={j.validation.result === 'passed' ? 'good' : 'bad'}>{j.validation.result}</Badge>{' '}
                {j.validation.triggers.map((t) => `${t.fixId}: ${t.before}→${t.after}`).join(', ')}
              </span>
            ),
        },
        {
          key: 'when',
          label: 'Finished',
          sort: (j) => j.finishedAt ?? '',
          render: (j) => (j.finishedAt === null ? '—' : <time title={when(j.finishedAt)}>{ago(j.finishedAt)}</time>),
        },
        { key: 'reason', label: 'Reason', render: (j) => j.reason ?? '' },
        {
          key: 'logs',
          label: 'Logs',
          render: (j) =>
            j.finishedAt === null ? (
              '—'
            ) : (
              <>
                <a href={`${API}/jobs/${j.id}/log`} target="_blank" rel="noopener">
                  build
                </a>
                {j.validation !== null && (
                  <>
                    {' · '}
                    <a href={`${API}/jobs/${j.id}/console`} target="_blank" rel="noopener">
                      console
                    </a>
                  </>
                )}
              </>
            ),
        },
      ]}
    />
  );
}

/** The build pipeline: submitted fixes with their plan per kernel build, and the jobs workers run. */
export function Pipeline(props: { session: { role: ApiRole } }): JSX.Element {
  const fixes = useApi<FixRecord[]>('/fixes');
  const jobs = useApi<JobRecord[]>('/jobs');
  const reload = (): void => {
    fixes.reload();
    jobs.reload();
  };
  useLiveRefresh(reload, ['audit']);
  return (
    <div class="page">
      <h1>Pipeline</h1>
      {canOperate(props.session.role) && <Submit reload={reload} />}
      <Card title="Jobs">
        {jobs.data === undefined ? (
          jobs.error ? (
            <Problem error={jobs.error} what="Jobs" />
          ) : (
            <Loading />
          )
        ) : jobs.data.length === 0 ? (
          <Empty>No build job yet.</Empty>
        ) : (
          <Jobs jobs={jobs.data} />
        )}
      </Card>
      {fixes.data === undefined ? (
        fixes.error ? (
          <Problem error={fixes.error} what="Fixes" />
        ) : (
          <Loading />
        )
      ) : fixes.data.length === 0 ? (
        <Card title="Fixes">
          <Empty>No fix submitted yet.</Empty>
        </Card>
      ) : (
        fixes.data.map((f) => <FixCard key={f.id} fix={f} />)
      )}
    </div>
  );
}
