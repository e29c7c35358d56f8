import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { diffObjects, describeKlp, extractPatchObject, writeKlpRelocations } from '../src/klp/index.ts';
import { compiler, fakeResolver, readelf } from './klp-helpers.ts';

const cc = compiler();
after(() => cc.cleanup());

const src = (n: number): string => `
extern int printk(const char *fmt, ...);
static __attribute__((noinline)) int foo(int a) { return a ^ 0x55; }
int bar(int a) { printk("bar %d\\n", a); return foo(a) + ${n}; }
`;

function linkedModule() {
  const diff = diffObjects(cc.compile('pl-orig', src(1)), cc.compile('pl-patched', src(2)), { unit: 'lib/pl.c' });
  const resolver = fakeResolver({
    printk: { object: 'vmlinux', exported: true, sympos: 0 },
    foo: { object: 'vmlinux', exported: false, sympos: 2 },
    bar: { object: 'vmlinux', exported: false, sympos: 0 },
  });
  const result = extractPatchObject(
    [{ unit: 'lib/pl.c', patched: cc.compile('pl-patched', src(2)), diff, object: 'vmlinux' }],
    resolver,
  );
  const patchO = join(cc.dir, 'patch.o');
  const mainO = join(cc.dir, 'main.o');
  const ko = join(cc.dir, 'mod.ko');
  writeFileSync(patchO, result.object);
  cc.compile(
    'main',
    'extern void __livegraft_new_1(void); void *ptr = __livegraft_new_1; int other(int a) { return a + 1; }',
  );
  // As kbuild links a module: the patch object first, then the generated main object.
  execFileSync('ld', ['-r', '-o', ko, patchO, mainO], { timeout: 60_000 });
  return { result, ko };
}

describe('writeKlpRelocations', () => {
  it('adds .klp.rela sections and .klp.sym symbols that readelf reads as the kernel expects', () => {
    const { result, ko } = linkedModule();
    assert.ok(result.klpRelocs.some((r) => r.symbol.name === 'foo' && r.symbol.sympos === 2));
    const out = writeKlpRelocations(readFileSync(ko), result.klpRelocs, { patchObject: result.object });
    const outPath = join(cc.dir, 'mod-klp.ko');
    writeFileSync(outPath, out);

    // Independent check with binutils.
    const sections = readelf(['-S'], outPath);
    const line = sections.split('\n').find((l) => l.includes('.klp.rela.vmlinux..text.livegraft.1'));
    assert.ok(line, sections);
    const fields = /\]\s+(\S+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s+(\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    assert.ok(fields, line);
    assert.equal(fields[2], 'RELA');
    assert.match(fields[4] ?? '', /A/, 'SHF_ALLOC');
    assert.match(fields[4] ?? '', /o/, 'OS-specific flag (SHF_RELA_LIVEPATCH)');
    const index = (name: string): string => {
      const l = sections.split('\n').find((x) => new RegExp(`\\]\\s+${name.replace(/\./g, '\\.')}\\s`).test(x));
      return /\[\s*(\d+)\]/.exec(l ?? '')?.[1] ?? 'missing';
    };
    assert.equal(fields[5], index('.symtab'), 'sh_link is .symtab');
    assert.equal(fields[6], index('.text.livegraft.1'), 'sh_info is the target section');

    const symbols = readelf(['-s'], outPath);
    const sym = symbols.split('\n').find((l) => l.trim().endsWith('.klp.sym.vmlinux.foo,2'));
    assert.ok(sym, symbols);
    // readelf prints st_shndx 0xff20 as an OS-specific index: "OS [0xff20]".
    assert.match(sym, /\bNOTYPE\s+GLOBAL\s+DEFAULT\s+OS \[0xff20\]\s+\.klp\.sym\.vmlinux\.foo,2$/);

    const relocs = readelf(['-r'], outPath);
    assert.match(
      relocs,
      /Relocation section '\.klp\.rela\.vmlinux\.\.text\.livegraft\.1'[\s\S]*?\.klp\.sym\.vmlinux\.foo,2/,
    );

    const d = describeKlp(out);
    assert.equal(d.sections.length, 1);
    assert.equal(d.sections[0]?.targetSection, '.text.livegraft.1');
    assert.ok(d.symbols.some((s) => s.symbol === 'foo' && s.sympos === 2 && s.shndx === 0xff20));
    // The rest of the module is untouched: the original sections still parse the same.
    assert.equal(
      readelf(['-s'], ko)
        .split('\n')
        .filter((l) => /\bFUNC\b/.test(l)).length,
      symbols.split('\n').filter((l) => /\bFUNC\b/.test(l)).length,
    );
  });

  it('refuses when the patch object was not linked first', () => {
    const { result, ko } = linkedModule();
    const bad = result.klpRelocs.map((r) => ({ ...r, section: 'nonexistent' }));
    assert.throws(() => writeKlpRelocations(readFileSync(ko), bad), /KLP_POSTLINK|0 sections named nonexistent/);
  });
});
