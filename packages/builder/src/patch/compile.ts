import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { errorLines } from '../kbuild.ts';
import type { ProcessRunner } from '../runner.ts';

/** One translation unit: 8-18 s on two cores; a wedged compiler is stopped long before this. */
const COMPILE_TIMEOUT_MS = 20 * 60 * 1000;
const COMPILE_OUTPUT_BYTES = 1024 * 1024;
/** Objects of a single unit are at most a few MB. */
const MAX_OBJECT_BYTES = 64 * 1024 * 1024;

/**
 * Function and data sections let the differ compare and copy one function at
 * a time; they do not change the code inside a function (kpatch and klp-build
 * rely on the same).
 */
export const DIFF_CFLAGS = '-ffunction-sections -fdata-sections';

export interface CompiledUnit {
  /** Path of the .c file relative to the tree. */
  unit: string;
  object: Buffer;
  /** `vmlinux`, or the module the unit is linked into (KBUILD_MODNAME). */
  target: string;
}

export interface CompileTree {
  sourceDir: string;
  /** Extra make variables the prepared tree needs (e.g. CC=gcc-12). */
  makeVars: readonly string[];
}

/** `vmlinux` or the module name, from the unit's kbuild command file. */
export function targetFromCmd(cmd: string, unit: string): string {
  const isModule = /(^|\s)-DMODULE(\s|$)/.test(cmd);
  if (!isModule) return 'vmlinux';
  const m = /-DKBUILD_MODNAME='"([A-Za-z0-9_-]+)"'/.exec(cmd) ?? /-DKBUILD_MODNAME=\\?"?([A-Za-z0-9_-]+)/.exec(cmd);
  if (!m?.[1]) {
    throw new LivegraftError('BUILD_FAILED', `cannot tell which module ${unit} belongs to (no KBUILD_MODNAME)`);
  }
  return m[1].replaceAll('-', '_');
}

/** Compiles the given units in the prepared tree; the caller holds the tree lock. */
export async function compileUnits(
  run: ProcessRunner,
  tree: CompileTree,
  units: readonly string[],
  signal?: AbortSignal,
): Promise<CompiledUnit[]> {
  const objects = units.map((u) => u.replace(/\.c$/, '.o'));
  const env: NodeJS.ProcessEnv = { ...process.env, LANG: 'C', LC_MESSAGES: 'C', LC_CTYPE: 'C' };
  delete env.LC_ALL;
  for (const k of ['MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES']) delete env[k];
  const jobs = Math.max(1, Math.min(4, availableParallelism()));
  const args = ['-C', tree.sourceDir, ...tree.makeVars, `KCFLAGS=${DIFF_CFLAGS}`, `-j${jobs}`, ...objects];
  let result;
  try {
    result = await run('make', args, {
      cwd: tree.sourceDir,
      env,
      timeoutMs: COMPILE_TIMEOUT_MS,
      maxOutputBytes: COMPILE_OUTPUT_BYTES,
      signal,
    });
  } catch (err) {
    throw new LivegraftError('TOOLCHAIN_MISSING', `cannot run make: ${(err as Error).message} (apt-get install make)`, {
      cause: err,
    });
  }
  if (signal?.aborted === true) throw new LivegraftError('CANCELLED', 'build cancelled');
  const output = `${result.stdout}\n${result.stderr}`.replaceAll(`${tree.sourceDir}/`, '');
  if (result.timedOut) {
    throw new LivegraftError(
      'BUILD_FAILED',
      `compiling ${units.join(', ')} took longer than ${COMPILE_TIMEOUT_MS / 1000} s`,
    );
  }
  if (result.code !== 0) {
    const errors = errorLines(output);
    const missingRule = /No rule to make target '([^']+)'/.exec(output);
    if (missingRule) {
      throw new LivegraftError('UNIT_NOT_BUILT', `${missingRule[1]} is not built in this kernel's configuration`, {
        details: { output: output.slice(-4000) },
      });
    }
    throw new LivegraftError(
      'BUILD_FAILED',
      `compiling ${units.join(', ')} failed:\n${(errors.length > 0 ? errors : output.trim().split('\n').slice(-20)).join('\n')}`,
      { details: { errors, output: output.slice(-8000) } },
    );
  }
  const out: CompiledUnit[] = [];
  for (const [i, unit] of units.entries()) {
    const obj = path.join(tree.sourceDir, objects[i] ?? '');
    const cmdFile = path.join(path.dirname(obj), `.${path.basename(obj)}.cmd`);
    const object = await readFile(obj);
    if (object.length > MAX_OBJECT_BYTES)
      throw new LivegraftError('BUILD_FAILED', `${objects[i]} is implausibly large`);
    const cmd = await readFile(cmdFile, 'utf8');
    out.push({ unit, object, target: targetFromCmd(cmd, unit) });
  }
  return out;
}
