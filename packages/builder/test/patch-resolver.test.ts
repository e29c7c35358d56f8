// KernelSymbolResolver over fake symvers/kallsyms and real gcc objects for the units and modules.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LivegraftError } from '@livegraft/protocol';
import { readElf, type ElfFile } from '../src/elf/index.ts';
import type { SymbolQuery } from '../src/klp/types.ts';
import {
  KernelSymbolResolver,
  moduleSymbolsOf,
  parseSymvers,
  type KallsymsSymbol,
  type ModuleSymbols,
} from '../src/patch/resolver.ts';
import { compiler } from './klp-helpers.ts';

const cc = compiler();
after(() => cc.cleanup());

const SYMVERS = [
  '0x12345678\tprintk\tvmlinux\tEXPORT_SYMBOL\t',
  '0x23456789\tip_tunnel_changelink\tnet/ipv4/ip_tunnel\tEXPORT_SYMBOL_GPL\t',
  '0x3456789a\tnf_ct_helper\tnet/netfilter/nf-conntrack\tEXPORT_SYMBOL_GPL\t',
  '',
].join('\n');

const k = (address: bigint, type: string, name: string): KallsymsSymbol => ({ address, type, name });
const BASE = 0xffffffff81000000n;

// Two translation units of vmlinux that both define a static `helper` and `cache`;
// keyctl_anchor and other_anchor are their unique functions.
const KALLSYMS: KallsymsSymbol[] = [
  k(BASE + 0x1000n, 'T', 'printk'),
  k(BASE + 0x2000n, 't', 'unique_static'),
  k(BASE + 0x10000n, 'T', 'keyctl_anchor'),
  k(BASE + 0x10100n, 't', 'helper'),
  k(BASE + 0x90000n, 'T', 'other_anchor'),
  k(BASE + 0x90200n, 't', 'helper'),
  k(BASE + 0xa0000n, 't', 'lonely_dup'),
  k(BASE + 0xb0000n, 't', 'lonely_dup'),
  k(BASE + 0xc0000n, 'T', 'mixed'),
  k(BASE + 0xc1000n, 't', 'mixed'),
  k(BASE + 0xd0000n, 'T', 'internal_global'),
];

const q = (over: Partial<SymbolQuery> & { name: string }): SymbolQuery => ({
  unit: 'security/keys/keyctl_pkey.c',
  object: 'vmlinux',
  definedInUnit: false,
  local: false,
  kind: 'function',
  ...over,
});

function unit(name: string, anchor: string): ElfFile {
  return readElf(
    cc.compile(
      name,
      [
        'static int __attribute__((noinline)) helper(int x) { return x * 3 + 1; }',
        `int ${anchor}(int x) { return helper(x) + 2; }`,
      ].join('\n'),
    ),
  );
}

/** A two-unit module linked like kbuild does (ld -r), each unit with its own static `helper`. */
function linkModule(name: string, strip: boolean): ElfFile {
  const a = join(cc.dir, `${name}_a.o`);
  const b = join(cc.dir, `${name}_b.o`);
  const ko = join(cc.dir, `${name}.ko`);
  cc.compile(
    `${name}_a`,
    'static int __attribute__((noinline)) helper(int x) { return x + 1; }\nint a_main(int x) { return helper(x); }\n',
  );
  cc.compile(
    `${name}_b`,
    'static int __attribute__((noinline)) helper(int x) { return x + 2; }\nint b_main(int x) { return helper(x); }\n',
  );
  execFileSync('ld', ['-r', a, b, '-o', ko], { stdio: 'pipe' });
  if (strip) execFileSync('strip', ['--strip-debug', ko], { stdio: 'pipe' });
  return readElf(readFileSync(ko));
}

function resolver(
  modules: Record<string, ModuleSymbols> = {},
  originals = new Map<string, ElfFile>(),
): KernelSymbolResolver {
  return new KernelSymbolResolver({
    symvers: parseSymvers(SYMVERS),
    kallsyms: KALLSYMS,
    moduleSymbols: (m) => modules[m],
    originals,
  });
}

function ambiguous(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof LivegraftError);
    assert.equal(err.code, 'SYMBOL_AMBIGUOUS');
    assert.match(err.message, pattern);
    return true;
  });
}

describe('parseSymvers', () => {
  it('maps each export to vmlinux or the module name (dashes become underscores)', () => {
    const s = parseSymvers(SYMVERS);
    assert.equal(s.get('printk'), 'vmlinux');
    assert.equal(s.get('ip_tunnel_changelink'), 'ip_tunnel');
    assert.equal(s.get('nf_ct_helper'), 'nf_conntrack');
    assert.equal(s.size, 3);
  });
});

describe('KernelSymbolResolver: vmlinux', () => {
  const originals = new Map([
    ['security/keys/keyctl_pkey.c', unit('keyctl_pkey', 'keyctl_anchor')],
    ['security/keys/other.c', unit('other', 'other_anchor')],
    ['security/keys/nowhere.c', unit('nowhere', 'not_in_kallsyms')],
  ]);
  const r = resolver({}, originals);

  it('an exported vmlinux symbol is a normal export', () => {
    assert.deepEqual(r.resolve(q({ name: 'printk' })), { object: 'vmlinux', exported: true, sympos: 0 });
  });

  it('a unique static is position 0; a non-exported global too', () => {
    assert.deepEqual(r.resolve(q({ name: 'unique_static', local: true, definedInUnit: true })), {
      object: 'vmlinux',
      exported: false,
      sympos: 0,
    });
    assert.deepEqual(r.resolve(q({ name: 'internal_global' })), { object: 'vmlinux', exported: false, sympos: 0 });
  });

  it('a symbol the kernel does not have is undefined', () => {
    assert.equal(r.resolve(q({ name: 'no_such_symbol' })), undefined);
  });

  it('duplicate statics are told apart by the unit nearest anchor', () => {
    const helper = { name: 'helper', local: true, definedInUnit: true };
    assert.deepEqual(r.resolve(q({ ...helper })), { object: 'vmlinux', exported: false, sympos: 1 });
    assert.deepEqual(r.resolve(q({ ...helper, unit: 'security/keys/other.c' })), {
      object: 'vmlinux',
      exported: false,
      sympos: 2,
    });
  });

  it('a global and a static of the same name: the kind of binding picks', () => {
    assert.deepEqual(r.resolve(q({ name: 'mixed' })), { object: 'vmlinux', exported: false, sympos: 1 });
    assert.deepEqual(r.resolve(q({ name: 'mixed', local: true })), { object: 'vmlinux', exported: false, sympos: 2 });
  });

  it('duplicates with no anchor of the unit near them are SYMBOL_AMBIGUOUS', () => {
    ambiguous(
      () => r.resolve(q({ name: 'helper', local: true, unit: 'security/keys/nowhere.c' })),
      /2 symbols named helper exist in vmlinux and none can be tied to security\/keys\/nowhere\.c/,
    );
    ambiguous(() => r.resolve(q({ name: 'lonely_dup', local: true, unit: 'security/keys/unknown.c' })), /lonely_dup/);
  });

  it('two candidates at the same distance from the anchor are SYMBOL_AMBIGUOUS', () => {
    const tie = new KernelSymbolResolver({
      symvers: new Map(),
      kallsyms: [k(BASE, 't', 'helper'), k(BASE + 0x100n, 'T', 'keyctl_anchor'), k(BASE + 0x200n, 't', 'helper')],
      moduleSymbols: () => undefined,
      originals,
    });
    ambiguous(() => tie.resolve(q({ name: 'helper', local: true })), /helper/);
  });
});

describe('KernelSymbolResolver: modules', () => {
  it('moduleSymbolsOf keeps the STT_FILE of each local', () => {
    const syms = moduleSymbolsOf(linkModule('twounits', false)).symbols.filter((s) => s.name === 'helper');
    assert.deepEqual(syms, [
      { name: 'helper', local: true, file: 'twounits_a.c' },
      { name: 'helper', local: true, file: 'twounits_b.c' },
    ]);
  });

  const mod = moduleSymbolsOf(linkModule('twounits', false));
  const r = resolver({
    twounits: mod,
    ip_tunnel: { symbols: [{ name: 'ip_tunnel_changelink', local: false, file: undefined }] },
  });
  const inMod = { object: 'twounits', local: true, definedInUnit: true } as const;

  it('a module local is picked by the STT_FILE of its unit', () => {
    assert.deepEqual(r.resolve(q({ ...inMod, name: 'helper', unit: 'drivers/x/twounits_a.c' })), {
      object: 'twounits',
      exported: false,
      sympos: 1,
    });
    assert.deepEqual(r.resolve(q({ ...inMod, name: 'helper', unit: 'drivers/x/twounits_b.c' })), {
      object: 'twounits',
      exported: false,
      sympos: 2,
    });
    assert.deepEqual(r.resolve(q({ ...inMod, name: 'a_main', local: false })), {
      object: 'twounits',
      exported: false,
      sympos: 0,
    });
  });

  it('a module local of a unit the module does not name is SYMBOL_AMBIGUOUS', () => {
    ambiguous(
      () => r.resolve(q({ ...inMod, name: 'helper', unit: 'drivers/x/third.c' })),
      /2 symbols named helper exist in module twounits and none belong to third\.c/,
    );
  });

  it('a symbol exported by another module resolves to that module', () => {
    assert.deepEqual(
      r.resolve(q({ name: 'ip_tunnel_changelink', object: 'twounits', unit: 'drivers/x/twounits_a.c' })),
      { object: 'ip_tunnel', exported: true, sympos: 0 },
    );
    // Exported by a module whose symbols are not loaded: still that module, position 0.
    assert.deepEqual(r.resolve(q({ name: 'nf_ct_helper', object: 'twounits', unit: 'drivers/x/twounits_a.c' })), {
      object: 'nf_conntrack',
      exported: true,
      sympos: 0,
    });
  });

  it('a vmlinux symbol referenced from a module unit', () => {
    const from = { object: 'twounits', unit: 'drivers/x/twounits_a.c' };
    assert.deepEqual(r.resolve(q({ ...from, name: 'printk' })), { object: 'vmlinux', exported: true, sympos: 0 });
    assert.deepEqual(r.resolve(q({ ...from, name: 'internal_global' })), {
      object: 'vmlinux',
      exported: false,
      sympos: 0,
    });
  });
});
