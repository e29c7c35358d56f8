import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { readElf } from '../src/elf/index.ts';
import { diffObjects, extractPatchObject, type SymbolLocation } from '../src/klp/index.ts';
import { compiler, fakeResolver } from './klp-helpers.ts';

const cc = compiler();
after(() => cc.cleanup());

const src = (n: number): string => `
extern int printk(const char *fmt, ...);
extern int internal_fn(int);
extern int mod_fn(int);
static __attribute__((noinline)) int helper2(int a) { return a ^ 0x55; }
static int counter;
int target(int a) {
  counter++;
  printk("value %d\\n", a);
  return helper2(a) + internal_fn(a) + mod_fn(a) + ${n};
}
int user(int a) { return helper2(a + counter); }
`;

const exported: SymbolLocation = { object: 'vmlinux', exported: true, sympos: 0 };
const table = (modObject: string): Record<string, SymbolLocation> => ({
  printk: exported,
  internal_fn: { object: 'vmlinux', exported: false, sympos: 0 },
  mod_fn: { object: modObject, exported: true, sympos: 0 },
  helper2: { object: 'vmlinux', exported: false, sympos: 2 },
  counter: { object: 'vmlinux', exported: false, sympos: 0 },
  target: { object: 'vmlinux', exported: false, sympos: 0 },
});

function build(object: string, modObject: string) {
  const o = cc.compile('cls-orig', src(1));
  const p = cc.compile('cls-patched', src(2));
  const diff = diffObjects(o, p, { unit: 'lib/cls.c' });
  const resolver = fakeResolver({
    ...table(modObject),
    target: { object, exported: false, sympos: 0 },
    helper2: { object, exported: false, sympos: 2 },
    counter: { object, exported: false, sympos: 0 },
  });
  return { diff, resolver, result: extractPatchObject([{ unit: 'lib/cls.c', patched: p, diff, object }], resolver) };
}

describe('extractPatchObject', () => {
  it('classifies exported, local, non-exported and duplicate-position references', () => {
    const { diff, result, resolver } = build('vmlinux', 'vmlinux');
    assert.deepEqual(
      diff.changed.map((c) => c.name),
      ['target'],
    );
    assert.deepEqual(result.refusals, []);
    assert.deepEqual(result.functions, [
      { name: 'target', object: 'vmlinux', sympos: 0, newSymbol: '__livegraft_new_1', unit: 'lib/cls.c' },
    ]);
    const klp = result.klpRelocs
      .map((r) => `${r.section}:${r.symbol.object}.${r.symbol.name},${r.symbol.sympos}`)
      .sort();
    // mod_fn is exported by vmlinux in this table: a normal relocation.
    assert.deepEqual(klp, [
      '.text.livegraft.1:vmlinux.counter,0',
      '.text.livegraft.1:vmlinux.helper2,2',
      '.text.livegraft.1:vmlinux.internal_fn,0',
    ]);
    // The static was looked up as a local of its unit, so duplicates can be told apart.
    const q = resolver.queries.find((x) => x.name === 'helper2');
    assert.equal(q?.local, true);
    assert.equal(q?.unit, 'lib/cls.c');

    const elf = readElf(result.object);
    const names = elf.symbols.map((s) => s.name);
    assert.ok(names.includes('__livegraft_new_1'));
    assert.ok(names.includes('printk'), 'exported symbol stays a normal undefined reference');
    assert.ok(names.includes('mod_fn'));
    assert.ok(!names.includes('helper2') && !names.includes('internal_fn'), 'klp targets are not ELF symbols');
    const text = elf.sections.find((s) => s.name === '.text.livegraft.1');
    assert.ok(text);
    // Every klp relocation field is zero in the object (the kernel refuses to overwrite non-zero).
    for (const r of result.klpRelocs) assert.equal(text.data.readInt32LE(r.offset), 0);
    const relocs = elf.relas.get(text.index) ?? [];
    assert.ok(
      !relocs.some((r) => result.klpRelocs.some((k) => k.offset === r.offset)),
      'no ELF relocation where a klp one is',
    );
  });

  it('refuses a vmlinux patch that refers to a module symbol', () => {
    const { result } = build('vmlinux', 'ip_gre');
    assert.equal(result.refusals.length, 1);
    assert.equal(result.refusals[0]?.symbol, 'mod_fn');
    assert.match(result.refusals[0]?.reason ?? '', /module ip_gre/);
  });

  it('makes a module patch refer to another module through a klp relocation', () => {
    const { result } = build('ip_gre', 'ip_tunnel');
    assert.deepEqual(result.refusals, []);
    const mod = result.klpRelocs.find((r) => r.symbol.name === 'mod_fn');
    assert.deepEqual(mod?.symbol, { object: 'ip_tunnel', name: 'mod_fn', sympos: 0 });
    const local = result.klpRelocs.find((r) => r.symbol.name === 'helper2');
    assert.deepEqual(local?.symbol, { object: 'ip_gre', name: 'helper2', sympos: 2 });
    assert.equal(result.functions[0]?.object, 'ip_gre');
  });
});
