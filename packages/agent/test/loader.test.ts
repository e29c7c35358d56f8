import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readKernelLog } from '../src/kernel/kmsg.ts';
import { createKmodLoader, errnoFromToolOutput, findTool } from '../src/kernel/loader.ts';

describe('errnoFromToolOutput', () => {
  const table: [string, string][] = [
    // busybox insmod: "can't insert '%s': %s" with moderror()/strerror()
    ["insmod: can't insert 'p.ko': File exists", 'EEXIST'],
    ["insmod: can't insert 'p.ko': invalid module format", 'ENOEXEC'],
    ["insmod: can't insert 'p.ko': unknown symbol in module, or unknown parameter", 'ENOENT'],
    ["insmod: can't insert 'p.ko': Invalid argument", 'EINVAL'],
    ["insmod: can't insert 'p.ko': Device or resource busy", 'EBUSY'],
    ["insmod: can't insert 'p.ko': Key was rejected by service", 'EKEYREJECTED'],
    ["insmod: can't insert 'p.ko': Operation not permitted", 'EPERM'],
    ["rmmod: can't unload module 'p': Resource temporarily unavailable", 'EAGAIN'],
    ["rmmod: can't unload module 'p': No such file or directory", 'ENOENT'],
    // kmod
    ['insmod: ERROR: could not insert module p.ko: File exists', 'EEXIST'],
    ['insmod: ERROR: could not insert module p.ko: Invalid module format', 'ENOEXEC'],
    ['insmod: ERROR: could not insert module p.ko: Exec format error', 'ENOEXEC'],
    ['insmod: ERROR: could not insert module p.ko: Unknown symbol in module', 'ENOENT'],
    ['insmod: ERROR: could not insert module p.ko: Required key not available', 'ENOKEY'],
    ['rmmod: ERROR: Module p is in use', 'EAGAIN'],
    ['rmmod: ERROR: Module p is not currently loaded', 'ENOENT'],
  ];
  for (const [text, errno] of table) {
    it(`${errno} from "${text}"`, () => assert.equal(errnoFromToolOutput(text), errno));
  }
  it('nothing for unknown text', () => assert.equal(errnoFromToolOutput('something odd'), undefined));
});

describe('createKmodLoader with real processes', () => {
  let dir: string;
  let bin: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'lg-loader-'));
    bin = join(dir, 'bin');
    mkdirSync(bin);
    const script = (name: string, body: string): void => {
      writeFileSync(join(bin, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(bin, name), 0o755);
    };
    // Records its arguments; fails like busybox when the module is named "bad".
    script(
      'insmod',
      `echo "$@" >> "${dir}/insmod.log"\ncase "$1" in *bad*) echo "insmod: can't insert '$1': File exists" >&2; exit 1;; esac\nexit 0`,
    );
    script('rmmod', `echo "rmmod: ERROR: Module $1 is in use" >&2\nexit 1`);
    writeFileSync(
      join(dir, 'kmsg'),
      [
        '6,100,5000,-;ext4: mounted filesystem',
        "4,101,5001,-;livepatch: enabling patch 'livegraft_aaa_l1'",
        '3,102,5002,-;bad: module is already loaded',
        '6,103,5003,-;unrelated line',
      ].join('\n'),
    );
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('runs insmod with the module path', async () => {
    const loader = createKmodLoader({ pathEnv: bin, kmsgPath: join(dir, 'kmsg') });
    await loader.load('/var/lib/livegraft/good.ko');
    assert.equal(readFileSync(join(dir, 'insmod.log'), 'utf8'), '/var/lib/livegraft/good.ko\n');
  });

  it('maps a failure to KERNEL_LOAD_EEXIST with the tool output and kernel log lines', async () => {
    const loader = createKmodLoader({ pathEnv: bin, kmsgPath: join(dir, 'kmsg') });
    await assert.rejects(loader.load('/x/bad.ko'), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'KERNEL_LOAD_EEXIST');
      assert.match(err.message, /tool said: insmod: can't insert '\/x\/bad.ko': File exists/);
      assert.match(err.message, /kernel log:\n {2}livepatch: enabling patch/);
      assert.match(err.message, /bad: module is already loaded/);
      assert.doesNotMatch(err.message, /unrelated line|ext4/);
      return true;
    });
  });

  it('maps rmmod "is in use" to KERNEL_UNLOAD_EAGAIN', async () => {
    const loader = createKmodLoader({ pathEnv: bin, kmsgPath: join(dir, 'none') });
    await assert.rejects(loader.unload('livegraft_x_l1'), { code: 'KERNEL_UNLOAD_EAGAIN' });
  });

  it('KERNEL_TOOL_MISSING when neither PATH nor sbin has the tool', () => {
    assert.throws(() => findTool('livegraft-no-such-tool', bin), { code: 'KERNEL_TOOL_MISSING' });
  });

  it('kills a hung tool after the timeout', async () => {
    writeFileSync(join(bin, 'insmod'), '#!/bin/sh\nsleep 5\n');
    const loader = createKmodLoader({ pathEnv: bin, kmsgPath: join(dir, 'none'), timeoutMs: 200 });
    await assert.rejects(loader.load('/x/slow.ko'), { code: 'KERNEL_LOAD_TIMEOUT' });
  });
});

describe('readKernelLog', () => {
  it('keeps only the last matching lines, bounded', () => {
    const dir = mkdtempSync(join(tmpdir(), 'lg-kmsg-'));
    try {
      const lines = Array.from({ length: 50 }, (_, i) => `6,${i},0,-;livepatch: line ${i}`);
      writeFileSync(join(dir, 'kmsg'), lines.join('\n'));
      const got = readKernelLog(['livepatch'], join(dir, 'kmsg'), 3);
      assert.deepEqual(got, ['livepatch: line 47', 'livepatch: line 48', 'livepatch: line 49']);
      assert.deepEqual(readKernelLog(['x'], join(dir, 'missing')), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
