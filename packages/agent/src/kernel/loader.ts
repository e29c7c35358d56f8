import { accessSync, constants } from 'node:fs';
import { basename, delimiter, join } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { readKernelLog } from './kmsg.ts';
import { runCommand, type CommandResult, type CommandRunner } from '../lib/process.ts';

/** Puts a module into the kernel and takes it out. The real one runs insmod/rmmod. */
export interface ModuleLoader {
  load(path: string): Promise<void>;
  unload(name: string): Promise<void>;
}

/** insmod returns once module_init (klp_enable_patch) has run; it never waits for the transition. */
export const MODULE_TOOL_TIMEOUT_MS = 60_000;
const EXTRA_TOOL_DIRS = ['/sbin', '/usr/sbin', '/bin', '/usr/bin'];

/**
 * strerror() texts and the special phrases busybox and kmod print instead
 * (busybox moderror(): "invalid module format", "unknown symbol in module, or
 * unknown parameter"; kmod: "is in use", "is not currently loaded").
 * Order matters: the first match wins.
 */
const ERRNO_PATTERNS: ReadonlyArray<readonly [RegExp, string]> = [
  [/file exists|module already loaded|already in kernel/i, 'EEXIST'],
  [/device or resource busy/i, 'EBUSY'],
  [/resource temporarily unavailable|is in use/i, 'EAGAIN'],
  [/key was rejected by service/i, 'EKEYREJECTED'],
  [/required key not available/i, 'ENOKEY'],
  [/operation not permitted/i, 'EPERM'],
  [/exec format error|invalid module format/i, 'ENOEXEC'],
  [/wrong symbol version|disagrees about version/i, 'ESRCH'],
  [/unknown symbol|no such file or directory|not currently loaded|no such module/i, 'ENOENT'],
  [/invalid argument|invalid (module )?param/i, 'EINVAL'],
  [/no such device/i, 'ENODEV'],
  [/cannot allocate memory|out of memory/i, 'ENOMEM'],
  [/function not implemented|does not support/i, 'ENOSYS'],
];

/** What each errno means for a livepatch load, for the humans reading the error. */
const LOAD_HINTS: Record<string, string> = {
  EEXIST: 'a module with this name is already loaded',
  EBUSY: 'another livepatch transition is running, or an ftrace/kprobe user conflicts with a patched function',
  EKEYREJECTED: 'the kernel does not trust the key the module is signed with (Secure Boot / module.sig_enforce)',
  ENOKEY: 'the module is unsigned or signed with an unknown key and the kernel enforces signatures',
  EPERM: 'module loading is not permitted (lockdown, kernel.modules_disabled=1, or not root)',
  ENOEXEC: 'the kernel rejected the module format (built for another kernel?)',
  ESRCH: 'a symbol version (CRC) disagrees with the running kernel',
  ENOENT: 'the module needs a symbol the kernel does not have',
  EINVAL: 'the kernel refused the patch (not a livepatch, incompatible state, or relocation failure)',
  ENODEV: 'a pre-patch callback refused the patch',
};

/** Load errnos that mean "this kernel will not run modules signed like this one". */
export const SIGNATURE_ERRNOS: ReadonlySet<string> = new Set(['EKEYREJECTED', 'ENOKEY', 'EPERM']);

export function errnoFromToolOutput(text: string): string | undefined {
  for (const [re, errno] of ERRNO_PATTERNS) if (re.test(text)) return errno;
  return undefined;
}

/** Turns a failed insmod/rmmod run into a stable error code such as KERNEL_LOAD_EEXIST. */
export function moduleToolError(
  op: 'load' | 'unload',
  target: string,
  result: CommandResult,
  kernelLog: string[] = [],
): LivegraftError {
  const stderr = (result.stderr.trim() || result.stdout.trim()).slice(0, 2000);
  const verb = op === 'load' ? 'LOAD' : 'UNLOAD';
  if (result.timedOut) {
    return new LivegraftError(
      `KERNEL_${verb}_TIMEOUT`,
      `${op === 'load' ? 'insmod' : 'rmmod'} ${target} did not finish within ${MODULE_TOOL_TIMEOUT_MS} ms`,
      { details: { kernelLog } },
    );
  }
  const errno = errnoFromToolOutput(stderr);
  // Signature enforcement and lockdown refuse every module signed with this key: terminal, never retried.
  const rejected = op === 'load' && errno !== undefined && SIGNATURE_ERRNOS.has(errno);
  const code = rejected
    ? 'KERNEL_REJECTED_SIGNATURE'
    : errno === undefined
      ? `KERNEL_${verb}_FAILED`
      : `KERNEL_${verb}_${errno}`;
  const hint = rejected
    ? `the kernel does not trust the module's signing key (module.sig_enforce or lockdown)` +
      (errno === 'EPERM' ? '; or module loading is disabled (kernel.modules_disabled=1)' : '') +
      `. Sign modules with a key the kernel trusts (e.g. an enrolled MOK); retrying cannot help`
    : op === 'load' && errno !== undefined
      ? LOAD_HINTS[errno]
      : undefined;
  const exit = result.exitCode === null ? `signal ${result.signal ?? '?'}` : `exit ${result.exitCode}`;
  let message = `${op === 'load' ? 'loading' : 'unloading'} ${target} failed (${exit})`;
  if (hint !== undefined) message += `: ${hint}`;
  if (stderr !== '') message += `\ntool said: ${stderr}`;
  if (kernelLog.length > 0) message += `\nkernel log:\n  ${kernelLog.join('\n  ')}`;
  return new LivegraftError(code, message, { details: { errno, stderr, kernelLog } });
}

/** Finds a program on PATH, then in the sbin directories a non-login shell often lacks. */
export function findTool(name: string, pathEnv = process.env['PATH'] ?? ''): string {
  const dirs = [...pathEnv.split(delimiter).filter((d) => d !== ''), ...EXTRA_TOOL_DIRS];
  for (const dir of dirs) {
    const candidate = join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // keep looking
    }
  }
  throw new LivegraftError('KERNEL_TOOL_MISSING', `cannot find ${name} on PATH or in ${EXTRA_TOOL_DIRS.join(', ')}`);
}

export interface KmodLoaderOptions {
  runner?: CommandRunner;
  pathEnv?: string;
  kmsgPath?: string;
  timeoutMs?: number;
}

/** The real loader: busybox or kmod insmod/rmmod, whichever is installed. */
export function createKmodLoader(opts: KmodLoaderOptions = {}): ModuleLoader {
  const run = opts.runner ?? runCommand;
  const timeoutMs = opts.timeoutMs ?? MODULE_TOOL_TIMEOUT_MS;
  const invoke = async (op: 'load' | 'unload', arg: string, moduleName: string): Promise<void> => {
    const tool = findTool(op === 'load' ? 'insmod' : 'rmmod', opts.pathEnv);
    let result: CommandResult;
    try {
      result = await run(tool, [arg], timeoutMs);
    } catch (err) {
      throw new LivegraftError('KERNEL_TOOL_FAILED', `cannot run ${tool}: ${(err as Error).message}`, { cause: err });
    }
    if (result.exitCode === 0 && !result.timedOut) return;
    throw moduleToolError(op, arg, result, readKernelLog([moduleName, 'livepatch'], opts.kmsgPath));
  };
  return {
    load: (path) => invoke('load', path, basename(path).replace(/\.ko$/, '')),
    unload: (name) => invoke('unload', name, name),
  };
}
