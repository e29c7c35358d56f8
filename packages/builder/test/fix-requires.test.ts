import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { checkFixSet, loadFix } from '../src/fixes.ts';

async function patchFix(id: string, requires?: string[]): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'lg-req-'));
  const spec = { id, title: id, cves: [], patches: ['a.patch'], ...(requires ? { requires } : {}) };
  await writeFile(path.join(dir, 'fix.json'), JSON.stringify(spec));
  await writeFile(path.join(dir, 'a.patch'), '--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-a\n+b\n');
  return dir;
}

describe('fixes that build on other fixes', () => {
  it('accepts the required fix earlier in the level', async () => {
    const base = await loadFix(await patchFix('BASE'));
    const user = await loadFix(await patchFix('USER', ['BASE']));
    assert.doesNotThrow(() => checkFixSet([base, user]));
  });

  it('refuses it later in the level, or missing, saying what to do', async () => {
    const base = await loadFix(await patchFix('BASE'));
    const user = await loadFix(await patchFix('USER', ['BASE']));
    assert.throws(() => checkFixSet([user, base]), {
      code: 'FIX_REQUIREMENT_MISSING',
      message: /fix USER builds on fix BASE, which must come before it/,
    });
    assert.throws(() => checkFixSet([user]), {
      code: 'FIX_REQUIREMENT_MISSING',
      message: /which is not in this level/,
    });
  });
});
