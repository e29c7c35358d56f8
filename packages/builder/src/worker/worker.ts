import { setTimeout as delay } from 'node:timers/promises';
import { LivegraftError, isLivegraftError, type JobClaim, type JobPhase, type JobResult } from '@livegraft/protocol';
import type { JobClient } from './client.ts';
import { runJob, type JobEnv } from './job.ts';

export interface WorkerOptions extends Omit<JobEnv, 'phase'> {
  /** Seconds between claims while the queue is empty. */
  pollMs: number;
  /** Stop after this many jobs (default: run until stopped). */
  maxJobs?: number;
  /** Exit once the queue is empty (after at least one claim attempt). */
  untilIdle?: boolean;
  /** Stops the loop; a running job is abandoned (its lease runs out and the server retries it). */
  signal: AbortSignal;
  /** Injected for tests. */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
  runJob?: typeof runJob;
}

export interface WorkerSummary {
  jobs: number;
  outcomes: Record<string, number>;
}

const MAX_BACKOFF_MS = 5 * 60_000;
const RESULT_ATTEMPTS = 6;

/** Waits `ms`, or less when `signal` aborts; never rejects. */
function defaultSleep(ms: number, signal: AbortSignal): Promise<void> {
  return delay(ms, undefined, { signal }).catch(() => undefined);
}

/** Transport trouble and server errors are worth retrying; a refusal is not. */
function retryable(err: unknown): boolean {
  return isLivegraftError(err) && (err.code === 'SERVER_UNREACHABLE' || err.code === 'SERVER_ERROR');
}

/**
 * Keeps a job's lease alive while it runs: beats at a third of the lease's
 * remaining time (between 5 and 30 s), and aborts the job when the server
 * says the lease is gone (it expired, or the job went to another worker).
 */
function keepLease(
  client: JobClient,
  job: JobClaim,
  abort: AbortController,
  log: (l: string) => void,
): { phase: (p: JobPhase) => void; stop: () => void } {
  let phase: JobPhase = 'build';
  let expires = Date.parse(job.leaseExpiresAt);
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = (): void => {
    if (stopped) return;
    const left = Number.isFinite(expires) ? expires - Date.now() : 60_000;
    timer = setTimeout(beat, Math.max(5_000, Math.min(30_000, left / 3)));
  };
  const beat = (): void => {
    client.heartbeat(job.jobId, { leaseId: job.leaseId, phase }).then(
      (lease) => {
        expires = Date.parse(lease.leaseExpiresAt);
        schedule();
      },
      (err: unknown) => {
        if (retryable(err)) {
          log(`heartbeat for job ${job.jobId} failed (${(err as Error).message}); retrying`);
          schedule();
          return;
        }
        log(`job ${job.jobId}: the lease is gone (${(err as Error).message}); abandoning it`);
        abort.abort(new LivegraftError('LEASE_LOST', `lease of job ${job.jobId} lost`));
      },
    );
  };
  schedule();
  return {
    phase: (p) => {
      if (p === phase) return;
      phase = p;
      if (timer !== undefined) clearTimeout(timer);
      beat();
    },
    stop: () => {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
    },
  };
}

async function sendResult(
  o: WorkerOptions,
  job: JobClaim,
  result: JobResult,
  sleep: WorkerOptions['sleep'],
): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await o.client.result(job.jobId, result);
      return;
    } catch (err) {
      if (!retryable(err) || attempt >= RESULT_ATTEMPTS || o.signal.aborted) throw err;
      o.log(`sending the result of job ${job.jobId} failed (${(err as Error).message}); retrying`);
      await sleep?.(Math.min(MAX_BACKOFF_MS, 2_000 * 2 ** attempt), o.signal);
    }
  }
}

/**
 * The worker loop: claim a job, run it under a kept lease, send its result;
 * wait and claim again while the queue is empty. A server that cannot be
 * reached is retried with a growing back-off; nothing a job does stops the loop.
 */
export async function runWorker(o: WorkerOptions): Promise<WorkerSummary> {
  const sleep = o.sleep ?? defaultSleep;
  const run = o.runJob ?? runJob;
  const summary: WorkerSummary = { jobs: 0, outcomes: {} };
  let backoff = o.pollMs;
  while (!o.signal.aborted && (o.maxJobs === undefined || summary.jobs < o.maxJobs)) {
    let job: JobClaim | undefined;
    try {
      job = await o.client.claim();
      backoff = o.pollMs;
    } catch (err) {
      if (!retryable(err)) throw err;
      o.log(`cannot claim a job: ${(err as Error).message}; retrying in ${Math.round(backoff / 1000)} s`);
      await sleep(backoff, o.signal);
      backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
      continue;
    }
    if (job === undefined) {
      if (o.untilIdle === true) break;
      await sleep(o.pollMs, o.signal);
      continue;
    }
    o.log(
      `job ${job.jobId}: level ${job.level} of ${job.kernel.release} adding ${job.newFix} (attempt ${job.attempt})`,
    );
    const abort = new AbortController();
    const onStop = (): void => abort.abort(new LivegraftError('CANCELLED', 'the worker is stopping'));
    o.signal.addEventListener('abort', onStop, { once: true });
    const lease = keepLease(o.client, job, abort, o.log);
    try {
      const result = await run({ ...o, phase: lease.phase }, job, abort.signal);
      lease.stop();
      await sendResult(o, job, result, sleep);
      summary.jobs++;
      summary.outcomes[result.outcome] = (summary.outcomes[result.outcome] ?? 0) + 1;
      const v = result.validation;
      o.log(
        `job ${job.jobId}: ${result.outcome}${v !== undefined ? `, validation ${v.result}` : ''}${result.reason !== undefined ? ` (${result.reason.split('\n')[0]})` : ''}`,
      );
    } catch (err) {
      // Inputs that could not be fetched, a lost lease, a refused result: the server retries the job later.
      o.log(`job ${job.jobId} abandoned: ${err instanceof Error ? err.message : String(err)}`);
      if (!abort.signal.aborted && !o.signal.aborted) await sleep(o.pollMs, o.signal);
    } finally {
      lease.stop();
      o.signal.removeEventListener('abort', onStop);
    }
  }
  return summary;
}
