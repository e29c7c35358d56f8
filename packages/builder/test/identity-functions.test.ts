import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { identityWarnings } from '../src/identity-functions.ts';

describe('fixes to the functions the kernel identity is read through', () => {
  it('warn for version_proc_show and the other identity sources in vmlinux', () => {
    const w = identityWarnings([
      { name: 'version_proc_show', object: 'vmlinux', fixId: 'proc-version-tag' },
      { name: 'notes_read', object: 'vmlinux', fixId: 'notes' },
      { name: 'cmdline_proc_show', object: 'vmlinux', fixId: 'cmdline-redact' },
    ]);
    assert.equal(w.length, 2);
    assert.match(w[0] ?? '', /fix proc-version-tag replaces version_proc_show, which produces \/proc\/version/);
    assert.match(w[1] ?? '', /build-id/);
  });

  it('say nothing for a module function of the same name', () => {
    assert.deepEqual(identityWarnings([{ name: 'version_proc_show', object: 'some_module', fixId: 'x' }]), []);
  });
});
