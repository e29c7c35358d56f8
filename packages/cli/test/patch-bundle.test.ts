import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import { bundleFromPatch, patchSubject } from '../src/patch-bundle.ts';

const PATCH = `From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001
From: A Developer <dev@example.org>
Subject: [PATCH 1/1] KEYS: fix overflow in
 keyctl_pkey_params_get_2()

commit 0123456789ab upstream.
---
--- a/security/keys/keyctl_pkey.c
+++ b/security/keys/keyctl_pkey.c
@@ -1,3 +1,3 @@
 a
-b
+c
 d
`;

describe('an upstream patch submitted on its own', () => {
  it('takes the title from the mail subject, without its [PATCH] tag, across folded lines', () => {
    assert.equal(patchSubject(PATCH), 'KEYS: fix overflow in keyctl_pkey_params_get_2()');
    assert.equal(patchSubject('--- a/x\n+++ b/x\n'), undefined);
  });

  it('becomes a fix bundle named after its first CVE, with fixedIn; without a CVE it is refused', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'lg-patch-'));
    try {
      const file = path.join(dir, '0001-KEYS fix.patch');
      await writeFile(file, PATCH);
      const b = await bundleFromPatch(file, { cve: ['CVE-2026-63824'], fixedIn: ['6.1=6.1.177'] });
      assert.deepEqual(b.spec, {
        id: 'CVE-2026-63824',
        title: 'KEYS: fix overflow in keyctl_pkey_params_get_2()',
        cves: ['CVE-2026-63824'],
        patches: ['0001-KEYS_fix.patch'],
        fixedIn: { '6.1': '6.1.177' },
      });
      assert.equal(Buffer.from(b.files[0]?.content ?? '', 'base64').toString(), PATCH);
      await assert.rejects(
        bundleFromPatch(file, {}),
        (e: unknown) => isLivegraftError(e) && e.code === 'FIX_NO_CVE' && /--cve/.test(e.message),
      );
      await assert.rejects(
        bundleFromPatch(file, { cve: ['CVE-2026-1'], fixedIn: ['6.1.177'] }),
        (e: unknown) => isLivegraftError(e) && /--fixed-in 6\.1\.177: give BRANCH=VERSION/.test(e.message),
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
