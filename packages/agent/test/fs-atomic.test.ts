import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { tempPathFor, writeFileAtomic } from '../src/lib/fs-atomic.ts';

describe('tempPathFor', () => {
  it('names a hidden temp file beside the target, with this process pid, never the same twice', () => {
    const target = join(tmpdir(), 'state', 'journal.json');
    const names = Array.from({ length: 1000 }, () => tempPathFor(target));
    assert.equal(new Set(names).size, names.length);
    for (const n of names) {
      assert.equal(dirname(n), dirname(target));
      assert.match(basename(n), new RegExp(`^\\.journal\\.json\\.${process.pid}\\.[0-9a-f]{8}\\.[0-9a-z]+\\.tmp$`));
    }
  });
});

describe('writeFileAtomic', () => {
  it('replaces the file whole, creates missing directories and leaves no temp file behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'livegraft-atomic-'));
    try {
      const path = join(dir, 'a', 'b', 'state.json');
      writeFileAtomic(path, 'one\n');
      writeFileAtomic(path, Buffer.from('two\n'));
      assert.equal(readFileSync(path, 'utf8'), 'two\n');
      assert.deepEqual(readdirSync(dirname(path)), ['state.json']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
