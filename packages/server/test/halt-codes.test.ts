import { test } from 'node:test';
import assert from 'node:assert/strict';
import { saysNothingAboutThePatch } from '../src/fleet/service.ts';

test('delivery and host-policy failures do not halt a rollout; failures of the patch on a kernel do', () => {
  for (const code of ['TUF_SIGNATURE_INVALID', 'DOWNLOAD_STALLED', 'SERVER_UNREACHABLE', 'KERNEL_REJECTED_SIGNATURE']) {
    assert.equal(saysNothingAboutThePatch(code), true, code);
  }
  for (const code of [
    'TRANSITION_STALLED',
    'KERNEL_LOAD_EINVAL',
    'MODULE_NOT_LIVEPATCH',
    'VERMAGIC_MISMATCH',
    undefined,
  ]) {
    assert.equal(saysNothingAboutThePatch(code), false, String(code));
  }
});
