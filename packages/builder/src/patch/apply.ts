import { LivegraftError } from '@livegraft/protocol';
import type { ProcessRunner } from '../runner.ts';

/** patch(1) on a kernel-sized file finishes in well under a second. */
const PATCH_TIMEOUT_MS = 60_000;
const PATCH_OUTPUT_BYTES = 256 * 1024;

export interface PatchRun {
  run: ProcessRunner;
  treeDir: string;
  /** Absolute path of the patch file. */
  patchFile: string;
  /** The patch as the user named it, for messages. */
  shown: string;
  strip: 0 | 1;
  signal?: AbortSignal;
}

async function patchCmd(p: PatchRun, extra: string[]): Promise<{ ok: boolean; output: string }> {
  // --fuzz=0: a security fix applied at the wrong place is worse than one that
  // does not apply. Offsets (moved lines) are still accepted.
  const args = [
    `-p${p.strip}`,
    '--batch',
    '--fuzz=0',
    '--no-backup-if-mismatch',
    '-r',
    '-',
    ...extra,
    '-i',
    p.patchFile,
  ];
  let result;
  try {
    result = await p.run('patch', args, {
      cwd: p.treeDir,
      env: { ...process.env, LC_ALL: 'C' },
      timeoutMs: PATCH_TIMEOUT_MS,
      maxOutputBytes: PATCH_OUTPUT_BYTES,
      signal: p.signal,
    });
  } catch (err) {
    throw new LivegraftError(
      'TOOLCHAIN_MISSING',
      `cannot run patch: ${(err as Error).message} (apt-get install patch)`,
      {
        cause: err,
      },
    );
  }
  return { ok: result.code === 0, output: `${result.stdout}\n${result.stderr}`.trim() };
}

/** The failures patch(1) printed, as "file: hunk #N failed at line L" lines. */
export function describePatchFailure(output: string): string[] {
  const out: string[] = [];
  let file = '';
  let missingAt: number | undefined;
  for (const line of output.split('\n')) {
    const f = /^(?:checking|patching) file '?([^']+?)'?$/.exec(line);
    if (f?.[1]) file = f[1];
    const h = /^Hunk #(\d+) FAILED at (\d+)/.exec(line);
    if (h) out.push(`${file}: hunk #${h[1]} does not apply (expected at line ${h[2]})`);
    const missing = /can't find file to patch at input line (\d+)/.exec(line);
    if (missing) {
      out.push(`patch line ${missing[1]}: the file it names is not in this kernel tree`);
      missingAt = out.length - 1;
    }
    // patch(1) then quotes the header it could not place: name the file.
    const quoted = /^\|\+\+\+ ([^\t]+)/.exec(line);
    if (quoted?.[1] && missingAt !== undefined) {
      out[missingAt] = `${quoted[1].trim()}: not in this kernel tree (${out[missingAt]?.split(':')[0] ?? 'patch'})`;
      missingAt = undefined;
    }
    if (/Reversed \(or previously applied\) patch detected/.test(line)) out.push(`${file}: already applied`);
    if (/^patch: \*\*\*\* /.test(line)) out.push(line.replace(/^patch: \*\*\*\* /, ''));
  }
  return out;
}

/** True when the patch's change is already in the tree (it applies in reverse). */
export async function appliesInReverse(p: PatchRun): Promise<boolean> {
  return (await patchCmd(p, ['-R', '--dry-run', '--force'])).ok;
}

/** Throws PATCH_DOES_NOT_APPLY naming each failing file and hunk. */
export async function checkApplies(p: PatchRun, kernel: string): Promise<void> {
  const r = await patchCmd(p, ['--dry-run', '--forward']);
  if (r.ok) return;
  const reasons = describePatchFailure(r.output);
  throw new LivegraftError(
    'PATCH_DOES_NOT_APPLY',
    `${p.shown} does not apply to the ${kernel} source tree:\n  ${(reasons.length > 0 ? reasons : [r.output]).join('\n  ')}`,
    { details: { patch: p.shown, kernel, reasons, output: r.output.slice(0, 4000) } },
  );
}

/** Applies the patch for real; checkApplies must have passed. */
export async function applyPatch(p: PatchRun, kernel: string): Promise<void> {
  const r = await patchCmd(p, ['--forward']);
  if (!r.ok) {
    throw new LivegraftError('PATCH_DOES_NOT_APPLY', `${p.shown} failed to apply to ${kernel}: ${r.output}`, {
      details: { patch: p.shown, output: r.output.slice(0, 4000) },
    });
  }
}
