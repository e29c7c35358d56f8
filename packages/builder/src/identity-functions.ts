/**
 * Kernel functions behind what identifies a running kernel: the agent keys
 * patches and caches on /proc/version, and reads the boot id and the build-id
 * too. A fix to one of them changes what the agent may read while the patch
 * is applied (the agent pins the identity per boot and by build-id, so it
 * copes, but the change is visible to everything else that reads them).
 */
export const IDENTITY_FUNCTIONS: ReadonlyMap<string, string> = new Map([
  ['version_proc_show', '/proc/version'],
  ['proc_do_uts_string', '/proc/sys/kernel/{osrelease,version}'],
  ['override_release', 'uname -r'],
  ['newuname', 'uname'],
  ['__do_sys_newuname', 'uname'],
  ['notes_read', '/sys/kernel/notes (the build-id)'],
  ['proc_do_uuid', '/proc/sys/kernel/random/boot_id'],
]);

/** A warning per replaced vmlinux function that the kernel identity is read through. */
export function identityWarnings(functions: readonly { name: string; object: string; fixId: string }[]): string[] {
  const out: string[] = [];
  for (const f of functions) {
    const what = f.object === 'vmlinux' ? IDENTITY_FUNCTIONS.get(f.name) : undefined;
    if (what === undefined) continue;
    out.push(
      `fix ${f.fixId} replaces ${f.name}, which produces ${what}: the kernel's identity text changes while ` +
        'this patch is applied (agents pin the identity per boot and by build-id; other tools may not)',
    );
  }
  return out;
}
