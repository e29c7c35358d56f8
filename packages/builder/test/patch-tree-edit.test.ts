import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { repairTree, withTreeEdits } from '../src/patch/tree-edit.ts';
import { scratch } from './helpers.ts';

describe('tree edits are undone', () => {
  let dir: string;
  let cleanup: () => Promise<void>;
  let n = 0;

  before(async () => {
    ({ dir, cleanup } = await scratch('lg-tree-edit-'));
  });
  after(() => cleanup());

  async function tree(): Promise<string> {
    const t = path.join(dir, `tree-${++n}`);
    await mkdir(path.join(t, 'net', 'ipv4'), { recursive: true });
    await writeFile(path.join(t, 'net', 'ipv4', 'icmp.c'), 'original icmp\n');
    await writeFile(path.join(t, 'Makefile'), 'all:\n');
    return t;
  }
  const read = (t: string, p: string): Promise<string> => readFile(path.join(t, p), 'utf8');
  const exists = (t: string, p: string): Promise<boolean> =>
    readFile(path.join(t, p)).then(
      () => true,
      () => false,
    );
  /** Nothing of the journal or the copies is left. */
  async function clean(t: string): Promise<void> {
    assert.deepEqual((await readdir(t)).sort(), ['Makefile', 'net']);
  }

  it('after success: modified files are restored, added files removed, fn result returned', async () => {
    const t = await tree();
    const r = await withTreeEdits(t, ['net/ipv4/icmp.c', 'net/ipv4/new.c', 'net/ipv4/icmp.c'], async () => {
      await writeFile(path.join(t, 'net', 'ipv4', 'icmp.c'), 'patched icmp\n');
      await writeFile(path.join(t, 'net', 'ipv4', 'new.c'), 'added\n');
      assert.equal(await exists(t, '.livegraft-edit.json'), true);
      return 42;
    });
    assert.equal(r, 42);
    assert.equal(await read(t, 'net/ipv4/icmp.c'), 'original icmp\n');
    assert.equal(await exists(t, 'net/ipv4/new.c'), false);
    await clean(t);
  });

  it('after a throw: restored, and the error passes through', async () => {
    const t = await tree();
    await assert.rejects(
      withTreeEdits(t, ['net/ipv4/icmp.c', 'Makefile'], async () => {
        await writeFile(path.join(t, 'net', 'ipv4', 'icmp.c'), 'half patched\n');
        await writeFile(path.join(t, 'Makefile'), 'broken\n');
        throw new Error('compile failed');
      }),
      /compile failed/,
    );
    assert.equal(await read(t, 'net/ipv4/icmp.c'), 'original icmp\n');
    assert.equal(await read(t, 'Makefile'), 'all:\n');
    await clean(t);
  });

  it('after a crash in the middle: repairTree restores from the journal', async () => {
    const t = await tree();
    // What a killed build leaves: journal + pristine copies written, files modified, no restore.
    let crashed: () => void = () => undefined;
    const stuck = new Promise<void>((resolve) => (crashed = resolve));
    void withTreeEdits(t, ['net/ipv4/icmp.c', 'net/ipv4/new.c'], async () => {
      await writeFile(path.join(t, 'net', 'ipv4', 'icmp.c'), 'patched icmp\n');
      await writeFile(path.join(t, 'net', 'ipv4', 'new.c'), 'added\n');
      crashed();
      await new Promise(() => undefined); // never returns: the process "died" here
    });
    await stuck;
    assert.equal(await read(t, 'net/ipv4/icmp.c'), 'patched icmp\n');
    assert.equal(await repairTree(t), true);
    assert.equal(await read(t, 'net/ipv4/icmp.c'), 'original icmp\n');
    assert.equal(await exists(t, 'net/ipv4/new.c'), false);
    await clean(t);
    assert.equal(await repairTree(t), false);
  });

  it('a journal written by hand (another process died) is repaired before the next edit', async () => {
    const t = await tree();
    await mkdir(path.join(t, '.livegraft-pristine'));
    await writeFile(path.join(t, '.livegraft-pristine', '0'), 'original icmp\n');
    await writeFile(
      path.join(t, '.livegraft-edit.json'),
      JSON.stringify({
        files: [
          { path: 'net/ipv4/icmp.c', backup: '0' },
          { path: 'net/ipv4/added.c', backup: null },
        ],
      }),
    );
    await writeFile(path.join(t, 'net', 'ipv4', 'icmp.c'), 'left patched\n');
    await writeFile(path.join(t, 'net', 'ipv4', 'added.c'), 'left behind\n');
    const seen = await withTreeEdits(t, ['Makefile'], () => read(t, 'net/ipv4/icmp.c'));
    assert.equal(seen, 'original icmp\n');
    assert.equal(await exists(t, 'net/ipv4/added.c'), false);
    await clean(t);
  });

  it('an unreadable journal is KERNEL_TREE_DAMAGED', async () => {
    const t = await tree();
    await writeFile(path.join(t, '.livegraft-edit.json'), '{ not json');
    await assert.rejects(repairTree(t), { code: 'KERNEL_TREE_DAMAGED' });
  });
});
