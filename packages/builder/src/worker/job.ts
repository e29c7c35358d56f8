import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  LivegraftError,
  MAX_BUILD_LOG_BYTES,
  MAX_CONSOLE_LOG_BYTES,
  isLivegraftError,
  type FixBundle,
  type FixSpec,
  type JobClaim,
  type JobPhase,
  type JobResult,
  type PatchManifest,
} from '@livegraft/protocol';
import { buildPatch, type BuildResult } from '../build.ts';
import { ensureKernelBuild } from '../kernel/index.ts';
import type { ProcessRunner } from '../runner.ts';
import { validateLevel, type LevelFiles } from '../validate/validate.ts';
import type { JobClient } from './client.ts';

/** What a worker brings to every job. */
export interface JobEnv {
  client: JobClient;
  run: ProcessRunner;
  /** Where kernel builds are cached (the builder's cache). */
  cacheDir: string;
  /** Scratch space; each job gets its own directory, removed afterwards. */
  workDir: string;
  node: string;
  agentBundle: string;
  validationTimeoutMs?: number;
  log: (line: string) => void;
  /** Tells the heartbeat which phase the job is in. */
  phase: (p: JobPhase) => void;
}

/** Keeps the first and the last part of a long log, within a byte budget. */
export class BoundedLog {
  #head: string[] = [];
  #tail: string[] = [];
  #headBytes = 0;
  #tailBytes = 0;
  #dropped = 0;

  constructor(readonly budget: number) {}

  add(line: string): void {
    const l = `${line.slice(0, 4000)}\n`;
    if (this.#headBytes + l.length <= this.budget / 2) {
      this.#head.push(l);
      this.#headBytes += l.length;
      return;
    }
    this.#tail.push(l);
    this.#tailBytes += l.length;
    while (this.#tailBytes > this.budget / 2 - 100 && this.#tail.length > 0) {
      this.#tailBytes -= (this.#tail.shift() ?? '').length;
      this.#dropped++;
    }
  }

  text(): string {
    const gap = this.#dropped > 0 ? `[... ${this.#dropped} lines left out ...]\n` : '';
    return this.#head.join('') + gap + this.#tail.join('');
  }
}

const FIXED_IN = /^already fixed in (\d+\.\d+(?:\.\d+)?)/;

/** Writes a fix bundle out as a fix directory (fix.json and its files). */
export async function writeFixDir(bundle: FixBundle, dir: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'fix.json'), `${JSON.stringify(bundle.spec, null, 2)}\n`);
  for (const f of bundle.files) {
    // FixFileName has no slash and no leading dot: the name stays inside dir.
    if (f.name === 'fix.json' || f.name !== path.basename(f.name))
      throw new LivegraftError('FIX_INVALID', `fix ${bundle.spec.id}: file name "${f.name}" is not allowed`);
    await writeFile(path.join(dir, f.name), Buffer.from(f.content, 'base64'));
  }
}

/** How a skipped fix's reason reads as a job outcome. */
export function skippedOutcome(reason: string): Pick<JobResult, 'outcome' | 'reason' | 'version'> {
  const m = FIXED_IN.exec(reason);
  if (m?.[1] !== undefined) return { outcome: 'already-fixed', reason, version: m[1] };
  if (/already in this tree|applies in reverse|already carries/.test(reason))
    return { outcome: 'already-fixed', reason };
  return { outcome: 'not-affected', reason };
}

/** How a builder error reads as a job outcome. */
export function errorOutcome(err: unknown, newFix: string): Pick<JobResult, 'outcome' | 'reason' | 'version'> {
  if (!isLivegraftError(err)) return { outcome: 'failed', reason: `INTERNAL: ${String(err)}` };
  const reason = `${err.code}: ${err.message}`.slice(0, 4000);
  switch (err.code) {
    case 'NOTHING_TO_BUILD': {
      const skipped = (err.details as { skipped?: { id: string; reason: string }[] } | undefined)?.skipped ?? [];
      const mine = skipped.find((s) => s.id === newFix);
      return mine !== undefined ? skippedOutcome(mine.reason) : { outcome: 'failed', reason };
    }
    case 'UNIT_NOT_BUILT':
      return { outcome: 'not-affected', reason: err.message };
    case 'NOT_LIVE_PATCHABLE':
    case 'KLP_EXTRACT':
    case 'KERNEL_CONFIG_MISMATCH':
      return { outcome: 'not-live-patchable', reason };
    default:
      return { outcome: 'failed', reason };
  }
}

async function previousLevel(env: JobEnv, job: JobClaim, dir: string): Promise<LevelFiles | undefined> {
  if (job.previous === null) return undefined;
  const manifest: PatchManifest = await env.client.previousManifest(job);
  if (manifest.level !== job.previous.level || manifest.module.sha256 !== job.previous.moduleSha256)
    throw new LivegraftError('SERVER_ERROR', `the server's previous level does not match the job's claim`);
  const bytes = await env.client.previousModule(job);
  const { createHash } = await import('node:crypto');
  if (createHash('sha256').update(bytes).digest('hex') !== manifest.module.sha256)
    throw new LivegraftError('SERVER_ERROR', `the previous level's module does not match its manifest's sha256`);
  await mkdir(dir, { recursive: true });
  const manifestPath = path.join(dir, `${manifest.name}.json`);
  const modulePath = path.join(dir, manifest.module.file);
  await writeFile(manifestPath, JSON.stringify(manifest));
  await writeFile(modulePath, bytes);
  return { manifest, manifestPath, modulePath };
}

/**
 * Runs one claimed job: fetches its fixes, builds the cumulative level with
 * the patch factory for the job's exact kernel build, and validates it in a
 * VM of that kernel. Returns the result to send; throws only when the job
 * was cancelled (lease lost, shutdown) or its inputs could not be fetched.
 */
export async function runJob(env: JobEnv, job: JobClaim, signal: AbortSignal): Promise<JobResult> {
  const dir = path.join(env.workDir, `job-${job.jobId.replace(/[^A-Za-z0-9_-]/g, '_')}`);
  const buildLog = new BoundedLog(MAX_BUILD_LOG_BYTES - 1024);
  const log = (line: string): void => {
    buildLog.add(line);
    env.log(line);
  };
  const timings = { buildMs: 0, validateMs: 0 };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  try {
    const fixes: { dir: string; spec: FixSpec }[] = [];
    for (const [i, f] of job.fixes.entries()) {
      const bundle = await env.client.fix(job, f.id);
      const fixDir = path.join(dir, 'fixes', `${String(i).padStart(3, '0')}-${f.id}`);
      await writeFixDir(bundle, fixDir);
      fixes.push({ dir: fixDir, spec: bundle.spec });
    }
    const previous = await previousLevel(env, job, path.join(dir, 'previous'));
    const procVersion = path.join(dir, 'proc-version');
    await writeFile(procVersion, `${job.kernel.procVersion.trim()}\n`);
    const out = path.join(dir, 'out');
    await mkdir(out);

    env.phase('build');
    log(`building level ${job.level} of ${job.kernel.release} (${job.fixes.map((f) => f.id).join(', ')})`);
    const t0 = Date.now();
    let built: BuildResult;
    try {
      built = await buildPatch({
        kernel: job.kernel.release,
        level: job.level,
        fixDirs: fixes.map((f) => f.dir),
        outDir: out,
        procVersionFile: procVersion,
        cacheDir: env.cacheDir,
        log,
        signal,
      });
    } catch (err) {
      if (isLivegraftError(err) && err.code === 'CANCELLED') throw err;
      timings.buildMs = Date.now() - t0;
      const o = errorOutcome(err, job.newFix);
      log(`build: ${o.outcome}: ${o.reason ?? ''}`);
      return { leaseId: job.leaseId, ...o, buildLog: buildLog.text(), timings };
    }
    timings.buildMs = Date.now() - t0;
    for (const w of built.warnings) log(`warning: ${w}`);
    const skipped = built.skipped.find((s) => s.id === job.newFix);
    if (skipped !== undefined) {
      log(`${job.newFix}: ${skipped.reason}`);
      return { leaseId: job.leaseId, ...skippedOutcome(skipped.reason), buildLog: buildLog.text(), timings };
    }
    if (built.manifest.kernel.id !== job.kernel.kernelId) {
      const reason = `the module targets kernel id ${built.manifest.kernel.id}, the job's hosts run ${job.kernel.kernelId}`;
      return { leaseId: job.leaseId, outcome: 'failed', reason, buildLog: buildLog.text(), timings };
    }

    env.phase('validate');
    const t1 = Date.now();
    const kernel = await ensureKernelBuild(job.kernel.release, {
      cacheDir: env.cacheDir,
      run: env.run,
      log,
      signal,
      parts: ['image'],
    });
    const { record, consoleLog } = await validateLevel({
      release: job.kernel.release,
      vmlinuz: kernel.vmlinuz,
      modulesDir: kernel.modulesDir,
      level: { manifest: built.manifest, manifestPath: built.manifestPath, modulePath: built.modulePath },
      ...(previous !== undefined ? { previous } : {}),
      fixes,
      newFixId: job.newFix,
      node: env.node,
      agentBundle: env.agentBundle,
      workDir: path.join(dir, 'vm'),
      run: env.run,
      log,
      signal,
      ...(env.validationTimeoutMs !== undefined ? { timeoutMs: env.validationTimeoutMs } : {}),
    });
    timings.validateMs = Date.now() - t1;
    return {
      leaseId: job.leaseId,
      outcome: 'built',
      manifest: built.manifest,
      module: (await readFile(built.modulePath)).toString('base64'),
      validation: record,
      buildLog: buildLog.text(),
      consoleLog: consoleLog.slice(-(MAX_CONSOLE_LOG_BYTES - 1024)),
      timings,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
