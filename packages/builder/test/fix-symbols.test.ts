import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isLivegraftError } from '@livegraft/protocol';
import { loadFix, parseSymbolRef, symbolCName } from '../src/fixes.ts';
import { examplesDir, scratch, writeFix } from './helpers.ts';

const spec = (symbols: string[], objects: string[] = ['vmlinux']): Record<string, unknown> => ({
  id: 'LG-SYM-1',
  title: 'symbols',
  cves: [],
  functions: objects.map((object, i) => ({ name: `f${i}`, object, replacement: `r_${i}` })),
  symbols,
});

describe('fix.json symbols', () => {
  let tmp: Awaited<ReturnType<typeof scratch>>;
  let n = 0;
  before(async () => {
    tmp = await scratch();
  });
  after(async () => {
    await tmp.cleanup();
  });

  async function load(symbols: string[], objects?: string[]): ReturnType<typeof loadFix> {
    const dir = await writeFix(path.join(tmp.dir, `fix${n++}`), spec(symbols, objects), { 'fix.c': '' });
    return loadFix(dir);
  }

  async function rejects(symbols: string[], message: RegExp, objects?: string[]): Promise<void> {
    await assert.rejects(load(symbols, objects), (err: unknown) => {
      assert.ok(isLivegraftError(err), String(err));
      assert.equal(err.code, 'FIX_INVALID');
      assert.match(err.message, message);
      return true;
    });
  }

  describe('when an entry names a position or a module', () => {
    it('maps every form to its own C name', () => {
      assert.equal(symbolCName('saved_command_line'), 'saved_command_line');
      assert.equal(symbolCName('foo.isra.0'), 'foo__isra__0');
      assert.equal(symbolCName('a,2'), 'a__2');
      assert.equal(symbolCName('mod:a'), 'mod__a');
      assert.equal(symbolCName('my-mod:a.b,3'), 'my_mod__a__b__3');
      assert.deepEqual(parseSymbolRef('my-mod:a.b,3'), { object: 'my_mod', name: 'a.b', sympos: 3 });
      assert.deepEqual(parseSymbolRef('a'), { object: 'vmlinux', name: 'a', sympos: 0 });
    });

    it('accepts name,N and module:name[,N] for a module the fix patches', async () => {
      const fix = await load(
        ['helper,2', 'foo.isra.0,12', 'ip_gre:ipgre_tap_ops', 'ip-gre:x,2'],
        ['vmlinux', 'ip_gre'],
      );
      assert.deepEqual(fix.spec.symbols, ['helper,2', 'foo.isra.0,12', 'ip_gre:ipgre_tap_ops', 'ip-gre:x,2']);
    });

    it('refuses malformed entries in the schema', async () => {
      for (const bad of ['a,0', 'a,', 'a,01', ':a', 'Mod:a', 'a:b:c', 'a,2,3', '1abc', 'a b']) {
        await rejects([bad], /invalid fix\.json: \/symbols\/0/);
      }
    });

    it('refuses a module the fix does not patch, and a vmlinux: prefix', async () => {
      await rejects(
        ['ip_gre:x'],
        /\/symbols\/0: "ip_gre:x" names a symbol of module ip_gre, which this fix does not patch/,
      );
      await rejects(['vmlinux:x'], /\/symbols\/0: write a vmlinux symbol without a prefix \("x"\)/);
    });

    it('refuses two entries behind one LG_SYMBOL name', async () => {
      await rejects(['a,2', 'a__2'], /"a__2" and "a,2" both map to LG_SYMBOL\(a__2\)/);
      await rejects(['m:a', 'm__a'], /both map to LG_SYMBOL\(m__a\)/, ['m']);
    });
  });

  it('keeps every example fix valid', async () => {
    const names = readdirSync(examplesDir);
    assert.ok(names.length > 0);
    for (const name of names) {
      const fix = await loadFix(path.join(examplesDir, name));
      for (const s of fix.spec.symbols ?? []) assert.equal(symbolCName(s), s.replaceAll('.', '__'));
    }
  });
});
