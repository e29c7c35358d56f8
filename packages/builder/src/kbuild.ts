import { availableParallelism } from 'node:os';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { GENERATED_HEADER } from './fixes.ts';
import type { ProcessRunner } from './runner.ts';

/** A cumulative patch of a few fixes builds in seconds; this only stops a wedged toolchain. */
export const MAKE_TIMEOUT_MS = 10 * 60 * 1000;
/** Captured make output per stream; a broken fix can produce megabytes of cascading errors. */
export const MAX_MAKE_OUTPUT_BYTES = 1024 * 1024;
/** Error lines quoted in a BUILD_FAILED message. */
const MAX_ERROR_LINES = 40;
/** Parallel compiler jobs; fixes are small, so more would only add noise. */
const MAX_JOBS = 8;

/** How to map build-tree paths back to what the user knows. */
export interface PathMap {
  buildDir: string;
  /** Build subdirectory => directory as the user named it. */
  subdirs: ReadonlyMap<string, string>;
}

/** Rewrites build-tree paths in compiler output to the fixes' own paths; generated files get `<generated>/`. */
export function rewritePaths(text: string, map: PathMap): string {
  let out = text;
  const pairs = [...map.subdirs].sort((a, b) => b[0].length - a[0].length);
  for (const [subdir, shown] of pairs) {
    // The generated header is ours, not a file in the fix directory.
    out = out.replaceAll(`${path.join(map.buildDir, subdir, GENERATED_HEADER)}`, `<generated>/${GENERATED_HEADER}`);
    out = out.replaceAll(`${path.join(map.buildDir, subdir)}/`, `${shown.replace(/\/+$/, '')}/`);
    // Kbuild sometimes prints paths relative to M=.
    out = out.replace(new RegExp(`(^|[\\s'"\`(])${escapeRegExp(subdir)}/`, 'gm'), `$1${shown.replace(/\/+$/, '')}/`);
  }
  return out.replaceAll(`${map.buildDir}/`, '<generated>/').replaceAll(map.buildDir, '<generated>');
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Diagnostics worth showing: compiler errors, the macro-expansion notes that
 * say where an error inside a macro (such as LG_SYMBOL) was used, and
 * modpost/linker errors.
 */
export function errorLines(output: string): string[] {
  return output
    .split('\n')
    .filter(
      (l) =>
        /: (fatal )?error: /.test(l) ||
        /: note: in expansion of macro /.test(l) ||
        /^ERROR: /.test(l) ||
        /undefined reference to/.test(l),
    )
    .slice(0, MAX_ERROR_LINES);
}

/** Compiler and modpost warnings, so a build that "works" can still be reviewed. */
export function warningLines(output: string): string[] {
  return output
    .split('\n')
    .filter((l) => /: warning: /.test(l) || /^WARNING: /.test(l))
    .slice(0, MAX_ERROR_LINES);
}

export interface MakeResult {
  /** Rewritten make output (stdout then stderr). */
  output: string;
  warnings: string[];
}

/** Runs `make -C <headers> M=<buildDir> modules`; throws BUILD_FAILED with the rewritten errors. */
export async function runKbuild(
  run: ProcessRunner,
  headersDir: string,
  map: PathMap,
  timeoutMs: number = MAKE_TIMEOUT_MS,
  signal?: AbortSignal,
): Promise<MakeResult> {
  // The kernel Makefile unexports LC_ALL, so the message language is pinned through LANG and LC_MESSAGES.
  const env: NodeJS.ProcessEnv = { ...process.env, LANG: 'C', LC_MESSAGES: 'C', LC_CTYPE: 'C' };
  delete env.LC_ALL;
  // An outer make (e.g. a packaging Makefile running us) must not leak its jobserver or flags in.
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES']) delete env[k];
  const jobs = Math.max(1, Math.min(MAX_JOBS, availableParallelism()));
  const args = ['-C', headersDir, `M=${map.buildDir}`, `-j${jobs}`, 'modules'];
  let result;
  try {
    result = await run('make', args, {
      cwd: map.buildDir,
      env,
      timeoutMs,
      maxOutputBytes: MAX_MAKE_OUTPUT_BYTES,
      signal,
    });
  } catch (err) {
    throw new LivegraftError('BUILD_FAILED', `cannot run make: ${(err as Error).message} (is make installed?)`, {
      cause: err,
    });
  }
  if (signal?.aborted === true) throw new LivegraftError('CANCELLED', 'build cancelled');
  const output = rewritePaths(`${result.stdout}\n${result.stderr}`, map);
  if (result.timedOut) {
    throw new LivegraftError('BUILD_FAILED', `make did not finish within ${Math.round(timeoutMs / 1000)} s`, {
      details: { output: tail(output) },
    });
  }
  if (result.code !== 0) {
    const errors = errorLines(output);
    const shown = errors.length > 0 ? errors : tail(output).split('\n');
    throw new LivegraftError(
      'BUILD_FAILED',
      `kernel module build failed (make exited ${result.code ?? result.signal}):\n${shown.join('\n')}`,
      { details: { errors, output: tail(output), truncated: result.truncated } },
    );
  }
  return { output, warnings: warningLines(output) };
}

/** The last lines of long output, which is where make says what stopped it. */
function tail(output: string, lines = 30): string {
  return output.trimEnd().split('\n').slice(-lines).join('\n');
}
