import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { diffObjects } from '../src/klp/index.ts';
import { compiler } from './klp-helpers.ts';

const cc = compiler();
after(() => cc.cleanup());

function diff(name: string, original: string, patched: string): ReturnType<typeof diffObjects> {
  return diffObjects(cc.compile(`${name}-orig`, original), cc.compile(`${name}-patched`, patched), {
    unit: `${name}.c`,
  });
}

const changedNames = (d: ReturnType<typeof diffObjects>): string[] => d.changed.map((c) => c.name).sort();

describe('diffObjects', () => {
  const unit = (helperBody: string, extra = ''): string => `
extern int printk(const char *fmt, ...);
${extra}
static inline int helper(int a) { return a * 3 + ${helperBody}; }
int caller1(int a) { printk("one %d\\n", a); return helper(a) + 1; }
int caller2(int a) { return helper(a) ^ 7; }
int untouched(int a) { printk("untouched %d\\n", a); return a + 100; }
`;

  it('does not report unchanged functions, and reports every caller a changed inline static was inlined into', () => {
    const d = diff('inline', unit('1'), unit('2'));
    assert.deepEqual(changedNames(d), ['caller1', 'caller2']);
    assert.equal(d.noChange, false);
    assert.deepEqual(d.refusals, []);
  });

  it('does not mark other functions changed when a string literal is added before theirs', () => {
    const d = diff(
      'strings',
      unit('1', 'int other(int a) { return a; }'),
      unit('1', 'int other(int a) { printk("a brand new message that shifts the string table %d\\n", a); return a; }'),
    );
    assert.deepEqual(changedNames(d), ['other']);
  });

  it('reports no change when the patch compiles to the same code', () => {
    const d = diff('nochange', unit('1'), unit('1') + '\n/* only a comment */\n');
    assert.equal(d.noChange, true);
    assert.deepEqual(d.changed, []);
    assert.deepEqual(d.added, []);
  });

  it('carries a .cold part with its parent and reports the parent changed', () => {
    const src = (msg: string): string => `
extern void report(const char *what, int n) __attribute__((cold));
extern int work(int n);
int checked(int *p, int n) {
  if (__builtin_expect(n > 100, 0)) { report("${msg}", n); report("again", n + 1); return -1; }
  return work(p[n]) + 2;
}
`;
    const d = diff('cold', src('too big'), src('far too big'));
    assert.deepEqual(changedNames(d), ['checked']);
    assert.deepEqual(d.carriedChildren, ['checked.cold']);
  });

  it('refuses a changed initial value of a global variable, naming it', () => {
    const d = diff(
      'data',
      'int limit = 5; int get(void) { return limit; }',
      'int limit = 6; int get(void) { return limit; }',
    );
    assert.equal(d.refusals.length, 1);
    assert.equal(d.refusals[0]?.symbol, 'limit');
    assert.match(d.refusals[0]?.reason ?? '', /variable limit/);
    assert.equal(d.noChange, false);
  });

  it('refuses a change to __init code', () => {
    const src = (n: number): string =>
      `extern int reg(int); __attribute__((section(".init.text"))) int setup(void) { return reg(${n}); } int keep(void) { return 1; }`;
    const d = diff('init', src(1), src(2));
    assert.equal(d.refusals.length, 1);
    assert.equal(d.refusals[0]?.symbol, 'setup');
    assert.match(d.refusals[0]?.reason ?? '', /__init/);
  });

  it('refuses a change to a notrace function (no ftrace call site at its entry)', () => {
    const src = (n: number): string => `__attribute__((no_instrument_function)) int quiet(int a) { return a + ${n}; }`;
    const d = diff('notrace', src(1), src(2));
    assert.equal(d.refusals[0]?.symbol, 'quiet');
    assert.match(d.refusals[0]?.reason ?? '', /ftrace/);
  });

  it('treats per-call-site data (__func__, once flags) as new data, not a changed variable', () => {
    const src = (extra: string): string => `
extern int printk(const char *fmt, ...);
#define ONCE(x) ({ static _Bool __already_done; if (!__already_done) { __already_done = 1; printk(x, __func__); } })
int first(int a) { ONCE("first %s"); return a; }
int second(int a) { ${extra} ONCE("second %s"); return a + 1; }
`;
    const d = diff('persite', src(''), src('ONCE("extra %s");'));
    assert.deepEqual(changedNames(d), ['second']);
    assert.deepEqual(d.refusals, []);
  });

  it('correlates compiler-numbered clones and names the original', () => {
    const src = (n: number): string => `
static __attribute__((noinline)) int scale(int a, int b) { return a * b + ${n}; }
int use1(int a) { return scale(a, 3); }
int use2(int a) { return scale(a, 3) + 1; }
`;
    const d = diff('clone', src(1), src(2));
    const clone = d.changed.find((c) => c.name.startsWith('scale'));
    assert.ok(clone, `a scale clone is changed: ${JSON.stringify(d.changed)}`);
    assert.equal(clone.originalName, d.correlation.get(clone.name));
  });
});
