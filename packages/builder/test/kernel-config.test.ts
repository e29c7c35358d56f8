import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import { assertConfigMatches, compareKconfig, parseKconfig } from '../src/kernel/index.ts';

const shipped = [
  '# comment',
  'CONFIG_CC_VERSION_TEXT="gcc-12 (Debian 12.2.0-14+deb12u1) 12.2.0"',
  'CONFIG_PAHOLE_VERSION=124',
  'CONFIG_LIVEPATCH=y',
  '# CONFIG_MODULE_SIG_FORCE is not set',
  'CONFIG_MODULE_SIG_HASH="sha256"',
  '',
].join('\n');

describe('kernel config comparison', () => {
  it('parses set and unset options', () => {
    const c = parseKconfig(shipped);
    assert.equal(c.get('CONFIG_LIVEPATCH'), 'y');
    assert.equal(c.get('CONFIG_MODULE_SIG_FORCE'), 'n');
    assert.equal(c.get('CONFIG_MODULE_SIG_HASH'), '"sha256"');
    assert.equal(c.size, 5);
  });

  it('accepts the build salt and signing keys as the only differences', () => {
    const prepared = `${shipped}CONFIG_BUILD_SALT="6.1.0-50-amd64"\nCONFIG_SYSTEM_TRUSTED_KEYS=""\nCONFIG_MODULE_SIG_KEY="certs/signing_key.pem"\n`;
    const cmp = compareKconfig(shipped, prepared);
    assert.deepEqual(cmp.unexpected, []);
    assert.deepEqual(
      cmp.allowed.map((d) => d.option),
      ['CONFIG_BUILD_SALT', 'CONFIG_MODULE_SIG_KEY', 'CONFIG_SYSTEM_TRUSTED_KEYS'],
    );
    assertConfigMatches('6.1.0-50-amd64', cmp);
  });

  it('treats "is not set" and an absent option as equal', () => {
    const cmp = compareKconfig(shipped, shipped.replace('# CONFIG_MODULE_SIG_FORCE is not set\n', ''));
    assert.deepEqual(cmp, { allowed: [], unexpected: [] });
  });

  it('names every other difference, shipped vs prepared, and blames the toolchain', () => {
    const prepared = shipped
      .replace('CONFIG_PAHOLE_VERSION=124', 'CONFIG_PAHOLE_VERSION=125')
      .replace('CONFIG_LIVEPATCH=y', '# CONFIG_LIVEPATCH is not set');
    const cmp = compareKconfig(shipped, prepared);
    assert.deepEqual(cmp.unexpected, [
      { option: 'CONFIG_LIVEPATCH', shipped: 'y', prepared: 'n' },
      { option: 'CONFIG_PAHOLE_VERSION', shipped: '124', prepared: '125' },
    ]);
    assert.throws(
      () => assertConfigMatches('6.1.0-50-amd64', cmp),
      (err: unknown) =>
        isLivegraftError(err) &&
        err.code === 'KERNEL_CONFIG_MISMATCH' &&
        err.message.includes('CONFIG_LIVEPATCH: shipped y, prepared n') &&
        err.message.includes('CONFIG_PAHOLE_VERSION: shipped 124, prepared 125') &&
        err.message.includes('pahole'),
    );
  });
});
