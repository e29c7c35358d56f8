import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LivegraftError, type UserspaceRefusal } from '@livegraft/protocol';

export const HELPER_NAME = 'livegraft-uspatch';

/**
 * Where the native helper is: LIVEGRAFT_USPATCH, else beside the agent bundle
 * (dist/), else where the Debian package installs it (/usr/libexec/livegraft-agent
 * for /usr/bin/livegraft-agent), else the package's dist/ when running from source.
 */
export function helperPath(env: Record<string, string | undefined> = process.env): string {
  const explicit = env['LIVEGRAFT_USPATCH'];
  if (explicit !== undefined && explicit !== '') return explicit;
  const here = dirname(fileURLToPath(import.meta.url));
  const candidates = [
    join(here, HELPER_NAME),
    join(here, '..', 'libexec', 'livegraft-agent', HELPER_NAME),
    join(here, '..', '..', 'dist', HELPER_NAME),
  ];
  const found = candidates.find((c) => existsSync(c));
  if (found === undefined) {
    throw new LivegraftError(
      'USERSPACE_NO_HELPER',
      `the native helper ${HELPER_NAME} is not installed beside the agent (looked in ${candidates.join(', ')}); set LIVEGRAFT_USPATCH`,
    );
  }
  return found;
}

/** One function of an apply: where its entry is and the 5 bytes the jump replaced. */
export interface SavedEntry {
  offset: number;
  saved: string;
}

export type HelperResult =
  | {
      ok: true;
      op: 'apply';
      pid: number;
      attempts: number;
      threads: number;
      stopUs: number;
      /** Of stopUs: from the interrupts until every thread had stopped (the threads' own scheduling). */
      stoppingUs?: number;
      /** The longest single stop (an apply stops twice: a short one to map the code, then the one for the jumps). */
      holdUs?: number;
      code: string;
      codeSize: number;
      functions: SavedEntry[];
    }
  | {
      ok: true;
      op: 'revert';
      pid: number;
      attempts: number;
      threads: number;
      stopUs: number;
      /** Of stopUs: from the interrupts until every thread had stopped (the threads' own scheduling). */
      stoppingUs?: number;
      /** The longest single stop (an apply stops twice: a short one to map the code, then the one for the jumps). */
      holdUs?: number;
      code: string;
      codeSize: number;
      unmapped: boolean;
      /** Why the code stayed mapped (a stack may still return into it). */
      message?: string;
    }
  | {
      ok: false;
      op: 'apply' | 'revert';
      pid: number;
      attempts: number;
      threads: number;
      stopUs: number;
      /** Of stopUs: from the interrupts until every thread had stopped (the threads' own scheduling). */
      stoppingUs?: number;
      /** The longest single stop (an apply stops twice: a short one to map the code, then the one for the jumps). */
      holdUs?: number;
      reason: UserspaceRefusal;
      step: string;
      errno: number;
      message: string;
    };

/**
 * Runs the helper once over several plans (one per process, in order) and
 * returns one result per plan. Bounded: the helper bounds its own waits, and
 * is killed past `timeoutMs` (the kernel then detaches every thread it held);
 * a plan left without a result gets an `error` result.
 */
export function runHelperBatch(
  helper: string,
  op: 'apply' | 'revert',
  plans: string[],
  timeoutMs = 600_000,
): Promise<HelperResult[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(helper, [op], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (out.length < 64 << 20) out += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      if (err.length < 1 << 16) err += d;
    });
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new LivegraftError('USERSPACE_HELPER_FAILED', `cannot run ${helper}: ${e.message}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const results: HelperResult[] = [];
      for (const line of out.split('\n')) {
        if (line.trim() === '') continue;
        try {
          results.push(JSON.parse(line) as HelperResult);
        } catch {
          break;
        }
      }
      const why = `${helper} ${op} ended (${signal ?? `exit ${code}`}) before this process: ${err.trim().slice(0, 200)}`;
      resolve(
        plans.map(
          (plan, i) =>
            results[i] ?? {
              ok: false,
              op,
              pid: Number(/^pid (\d+)$/m.exec(plan)?.[1] ?? 0),
              attempts: 0,
              threads: 0,
              stopUs: 0,
              reason: 'error',
              step: 'helper',
              errno: 0,
              message: why,
            },
        ),
      );
    });
    child.stdin.on('error', () => undefined); // it may exit before reading everything
    child.stdin.end(plans.join('next\n'));
  });
}

/** Runs the helper once with one plan. */
export async function runHelper(
  helper: string,
  op: 'apply' | 'revert',
  plan: string,
  timeoutMs = 60_000,
): Promise<HelperResult> {
  return (await runHelperBatch(helper, op, [plan], timeoutMs))[0]!;
}
