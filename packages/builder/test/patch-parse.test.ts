import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { LivegraftError } from '@livegraft/protocol';
import {
  classifyPath,
  headerChangeIsHarmless,
  MAX_PATCH_BYTES,
  parsePatch,
  type TouchedFile,
} from '../src/patch/parse.ts';
import { repoRoot } from './helpers.ts';

const SHA = 'cb481e59ea6cae3b7796ac1d7a22b6b24c3f3c0b';

function invalid(text: string, pattern: RegExp, treeHas?: (p: string) => boolean): void {
  assert.throws(
    () => parsePatch(text, 'fix/x.patch', treeHas),
    (err: unknown) => {
      assert.ok(err instanceof LivegraftError);
      assert.equal(err.code, 'PATCH_INVALID');
      assert.match(err.message, /^fix\/x\.patch: /);
      assert.match(err.message, pattern);
      return true;
    },
  );
}

const HUNK = ['@@ -1,3 +1,3 @@', ' a', '-b', '+B', ' c', ''].join('\n');

describe('parsePatch: git format-patch', () => {
  it('reads the commit, a folded subject without its [PATCH n/m] prefix, and the files', () => {
    const text = [
      `From ${SHA} Mon Sep 17 00:00:00 2001`,
      'From: Someone <someone@example.org>',
      'Date: Tue, 30 Jun 2026 00:00:00 +0000',
      'Subject: [PATCH 2/3] [net] ipv4: a subject that is long enough to be',
      ' folded onto a second line',
      '',
      'Body text.',
      '',
      'Signed-off-by: Someone <someone@example.org>',
      '---',
      ' net/ipv4/icmp.c | 2 +-',
      ' 1 file changed, 1 insertion(+), 1 deletion(-)',
      '',
      'diff --git a/net/ipv4/icmp.c b/net/ipv4/icmp.c',
      'index 0123456..789abcd 100644',
      '--- a/net/ipv4/icmp.c',
      '+++ b/net/ipv4/icmp.c',
      '@@ -10,3 +10,3 @@ static int f(void)',
      ' \tint a;',
      '-\treturn 0;',
      '+\treturn 1;',
      ' }',
      '-- ',
      '2.39.5',
      '',
    ].join('\n');
    const p = parsePatch(text, 'x.patch');
    assert.deepEqual(p.commit, {
      id: SHA,
      subject: 'ipv4: a subject that is long enough to be folded onto a second line',
    });
    assert.equal(p.upstreamCommit, undefined);
    assert.equal(p.strip, 1);
    assert.equal(p.files.length, 1);
    const f = p.files[0];
    assert.equal(f?.path, 'net/ipv4/icmp.c');
    assert.equal(f?.op, 'modify');
    assert.equal(f?.kind, 'c');
    assert.equal(f?.hunks, 1);
    assert.deepEqual(f?.added, ['\treturn 1;']);
    assert.deepEqual(f?.removed, ['\treturn 0;']);
  });

  for (const [style, line] of [
    ['commit X upstream.', `commit ${SHA} upstream.`],
    ['[ Upstream commit X ]', `[ Upstream commit ${SHA} ]`],
  ] as const) {
    it(`a stable backport names its mainline commit (${style})`, () => {
      const text = [
        'From 1111111111111111111111111111111111111111 Mon Sep 17 00:00:00 2001',
        'Subject: [PATCH 6.1 012/345] KEYS: fix it',
        '',
        line,
        '',
        '---',
        '--- a/security/keys/keyctl_pkey.c',
        '+++ b/security/keys/keyctl_pkey.c',
        HUNK,
      ].join('\n');
      const p = parsePatch(text, 'x.patch');
      assert.equal(p.commit?.id, '1111111111111111111111111111111111111111');
      assert.equal(p.commit?.subject, 'KEYS: fix it');
      assert.equal(p.upstreamCommit, SHA);
    });
  }

  it('a patch without headers has no commit', () => {
    const p = parsePatch(['--- a/x.c', '+++ b/x.c', HUNK].join('\n'), 'x.patch');
    assert.equal(p.commit, undefined);
    assert.equal(p.upstreamCommit, undefined);
  });

  it('added and deleted files (git /dev/null sides)', () => {
    const text = [
      'diff --git a/net/new.c b/net/new.c',
      'new file mode 100644',
      '--- /dev/null',
      '+++ b/net/new.c',
      '@@ -0,0 +1,2 @@',
      '+int a;',
      '+int b;',
      'diff --git a/net/old.h b/net/old.h',
      'deleted file mode 100644',
      '--- a/net/old.h',
      '+++ /dev/null',
      '@@ -1 +0,0 @@',
      '-int c;',
      '',
    ].join('\n');
    const p = parsePatch(text, 'x.patch');
    assert.deepEqual(
      p.files.map((f) => [f.path, f.op, f.kind]),
      [
        ['net/new.c', 'add', 'c'],
        ['net/old.h', 'delete', 'header'],
      ],
    );
    assert.equal(p.strip, 1);
  });

  it('"--- " lines inside a hunk are content, not a new file', () => {
    const text = [
      '--- a/lib/x.c',
      '+++ b/lib/x.c',
      '@@ -1,3 +1,3 @@',
      ' a',
      '--- removed line starting with two dashes',
      '+++ added line starting with two pluses',
      ' c',
      '--- a/lib/y.c',
      '+++ b/lib/y.c',
      HUNK,
    ].join('\n');
    const p = parsePatch(text, 'x.patch');
    assert.deepEqual(
      p.files.map((f) => f.path),
      ['lib/x.c', 'lib/y.c'],
    );
    assert.deepEqual(p.files[0]?.removed, ['-- removed line starting with two dashes']);
    assert.deepEqual(p.files[0]?.added, ['++ added line starting with two pluses']);
  });

  it('several hunks, "\\ No newline at end of file" and hunks without counts', () => {
    const text = [
      '--- a/x.c',
      '+++ b/x.c',
      '@@ -1 +1 @@',
      '-a',
      '+b',
      '\\ No newline at end of file',
      '@@ -10,2 +10,3 @@',
      ' x',
      '+y',
      ' z',
      '',
    ].join('\n');
    const p = parsePatch(text, 'x.patch');
    assert.equal(p.files[0]?.hunks, 2);
    assert.deepEqual(p.files[0]?.added, ['b', 'y']);
  });
});

describe('parsePatch: plain diff -u and strip level', () => {
  const diffU = (oldP: string, newP: string): string =>
    [`--- ${oldP}\t2026-07-01 10:00:00.000000000 +0000`, `+++ ${newP}\t2026-07-01 10:05:00.000000000 +0000`, HUNK].join(
      '\n',
    );

  it('two trees (linux.orig/ vs linux/) with dates: -p1, the date is not part of the path', () => {
    const p = parsePatch(diffU('linux.orig/net/ipv4/icmp.c', 'linux/net/ipv4/icmp.c'), 'x.patch');
    assert.equal(p.strip, 1);
    assert.equal(p.files[0]?.path, 'net/ipv4/icmp.c');
  });

  it('bare tree paths (-p0) are kept whole', () => {
    const p = parsePatch(diffU('net/ipv4/icmp.c.orig', 'net/ipv4/icmp.c'), 'x.patch');
    assert.equal(p.strip, 0);
    assert.equal(p.files[0]?.path, 'net/ipv4/icmp.c');
    const top = parsePatch(diffU('Makefile.orig', 'Makefile'), 'x.patch');
    assert.equal(top.strip, 0);
    assert.equal(top.files[0]?.path, 'Makefile');
  });

  it('git diff --no-prefix (same path on both sides) is -p0', () => {
    const p = parsePatch(['--- net/ipv4/icmp.c', '+++ net/ipv4/icmp.c', HUNK].join('\n'), 'x.patch');
    assert.equal(p.strip, 0);
    assert.equal(p.files[0]?.path, 'net/ipv4/icmp.c');
  });

  it('the tree settles which reading names real files', () => {
    const tree = new Set(['net/ipv4/icmp.c']);
    const text = ['--- a/net/ipv4/icmp.c', '+++ b/net/ipv4/icmp.c', HUNK].join('\n');
    assert.equal(parsePatch(text, 'x.patch', (p) => tree.has(p)).strip, 1);
    const p0 = ['--- net/ipv4/icmp.c', '+++ net/ipv4/icmp.c', HUNK].join('\n');
    const r = parsePatch(p0, 'x.patch', (p) => tree.has(p));
    assert.equal(r.strip, 0);
    assert.equal(r.files[0]?.path, 'net/ipv4/icmp.c');
  });
});

describe('parsePatch: refusals', () => {
  const one = (oldP: string, newP: string): string => [`--- ${oldP}`, `+++ ${newP}`, HUNK].join('\n');

  it('absolute paths', () => {
    invalid(one('/etc/passwd', '/etc/passwd'), /refusing path/);
    invalid(one('a//etc/passwd', 'b//etc/passwd'), /refusing path/);
  });

  it('.. paths', () => {
    invalid(one('a/../../etc/passwd', 'b/../../etc/passwd'), /refusing path "a\/..\/..\/etc\/passwd"/);
    invalid(one('a/net/../../x.c', 'b/net/../../x.c'), /refusing path/);
  });

  it('NUL bytes', () => invalid(`${one('a/x.c', 'b/x.c')}\0`, /NUL/));

  it('a binary patch', () => {
    invalid(
      ['diff --git a/fw.bin b/fw.bin', 'index 1..2 100644', 'GIT binary patch', 'literal 3', 'HcmZ?', ''].join('\n'),
      /binary/,
    );
    invalid(
      [
        'diff --git a/x.c b/x.c',
        '--- a/x.c',
        '+++ b/x.c',
        HUNK,
        'diff --git a/fw.bin b/fw.bin',
        'index 1..2 100644',
        'Binary files a/fw.bin and b/fw.bin differ',
        '',
      ].join('\n'),
      /binary/,
    );
  });

  it('more than the size limit', () => {
    const big = one('a/x.c', 'b/x.c') + `${'x'.repeat(100)}\n`.repeat(Math.ceil(MAX_PATCH_BYTES / 101) + 1);
    invalid(big, /too large/);
  });

  it('a hunk cut short at the end, or interrupted by another header', () => {
    invalid(['--- a/x.c', '+++ b/x.c', '@@ -1,3 +1,3 @@', ' a', '-b', ''].join('\n'), /cut short/);
    invalid(
      [
        '--- a/x.c',
        '+++ b/x.c',
        '@@ -1,3 +1,3 @@',
        ' a',
        'diff --git a/y.c b/y.c',
        '--- a/y.c',
        '+++ b/y.c',
        HUNK,
      ].join('\n'),
      /hunk ends early/,
    );
  });

  it('a hunk with more lines than its header counts', () => {
    invalid(['--- a/x.c', '+++ b/x.c', '@@ -1,1 +1,3 @@', ' a', ' b', '+c', '+d', ''].join('\n'), /hunk/);
  });

  it('no diff at all, a file header without hunks, both sides /dev/null', () => {
    invalid('Subject: nothing here\n\njust words\n', /no unified diff/);
    invalid(['--- a/x.c', '+++ b/x.c', ''].join('\n'), /x\.c: file header without hunks/);
    invalid(['--- /dev/null', '+++ /dev/null', HUNK].join('\n'), /both sides/);
  });
});

describe('classifyPath', () => {
  it('sorts kernel paths', () => {
    assert.equal(classifyPath('net/ipv4/icmp.c'), 'c');
    assert.equal(classifyPath('include/net/rtnetlink.h'), 'header');
    assert.equal(classifyPath('arch/x86/entry/entry_64.S'), 'assembly');
    assert.equal(classifyPath('net/ipv4/Makefile'), 'build');
    assert.equal(classifyPath('net/Kconfig'), 'build');
    assert.equal(classifyPath('Documentation/x.rst'), 'ignored');
    assert.equal(classifyPath('tools/testing/selftests/net/x.c'), 'ignored');
    assert.equal(classifyPath('MAINTAINERS'), 'ignored');
  });
});

describe('headerChangeIsHarmless', () => {
  const file = (added: string[], removed: string[] = []): TouchedFile => ({
    path: 'include/x.h',
    op: 'modify',
    kind: 'header',
    hunks: 1,
    added,
    removed,
  });

  it('prototypes (one line and several lines), with attributes', () => {
    assert.deepEqual(headerChangeIsHarmless(file(['int foo(struct sk_buff *skb, int x);'])), { ok: true });
    assert.deepEqual(headerChangeIsHarmless(file(['extern void bar(void) __cold;'])), { ok: true });
    assert.deepEqual(
      headerChangeIsHarmless(file(['int rtnl_get_net_ns_capable(struct sock *sk,', '\t\t\t     int netnsid);'])),
      { ok: true },
    );
  });

  it('macros, including multi-line ones and a changed line in the middle of one', () => {
    assert.deepEqual(headerChangeIsHarmless(file(['#define FOO 1'], ['#define FOO 0'])), { ok: true });
    assert.deepEqual(
      headerChangeIsHarmless(
        file(['#define CHECK(x) \\', '\tdo { \\', '\t\tif (x) return -EINVAL; \\', '\t} while (0)']),
      ),
      { ok: true },
    );
    assert.deepEqual(
      headerChangeIsHarmless(file(['\t\tif ((x) > 1) return -EINVAL; \\'], ['\t\tif (x) return -EINVAL; \\'])),
      { ok: true },
    );
  });

  it('comments and blank lines', () => {
    assert.deepEqual(
      headerChangeIsHarmless(file(['/*', ' * Why the check is needed.', ' */', '', '// one line', '/* inline */'])),
      { ok: true },
    );
  });

  it('a struct field is not harmless', () => {
    const r = headerChangeIsHarmless(file(['\tint new_field;']));
    assert.deepEqual(r, { ok: false, line: '\tint new_field;' });
    assert.equal(headerChangeIsHarmless(file(['\tunsigned long flags;'], ['\tu32 flags;'])).ok, false);
    // A function-pointer field looks like a prototype but changes the layout.
    assert.equal(headerChangeIsHarmless(file(['\tvoid (*destroy)(struct sock *sk);'])).ok, false);
    assert.equal(headerChangeIsHarmless(file(['\tint\t\t(*changelink)(struct net_device *dev,'])).ok, false);
  });

  it('an inline function body is not harmless', () => {
    assert.equal(headerChangeIsHarmless(file(['static inline int f(void) { return 1; }'])).ok, false);
    const r = headerChangeIsHarmless(file(['static inline int f(int x)', '{', '\treturn x + 1;', '}']));
    assert.equal(r.ok, false);
    assert.equal(headerChangeIsHarmless(file(['\treturn x + 1;'], ['\treturn x;'])).ok, false);
  });
});

describe('the catalogue', () => {
  const dir = path.join(repoRoot, 'catalogue');
  const fixes = readdirSync(dir).filter((d) => d.startsWith('CVE-'));

  it('has fixes', () => assert.ok(fixes.length >= 10, fixes.join(' ')));

  for (const id of fixes) {
    it(`${id}: every patch parses, touches C, and names its commit`, () => {
      const spec = JSON.parse(readFileSync(path.join(dir, id, 'fix.json'), 'utf8')) as {
        patches?: string[];
        commits?: { id?: string; subject: string }[];
      };
      assert.ok(spec.patches && spec.patches.length > 0, `${id} has no patches`);
      for (const name of spec.patches) {
        const p = parsePatch(readFileSync(path.join(dir, id, name), 'utf8'), `${id}/${name}`);
        assert.match(p.commit?.id ?? '', /^[0-9a-f]{40}$/, `${id}/${name} names no commit`);
        assert.ok((p.commit?.subject ?? '').length > 5);
        assert.equal(p.strip, 1);
        assert.ok(p.files.some((f) => f.kind === 'c'));
        for (const f of p.files) assert.ok(!f.path.startsWith('a/') && !f.path.startsWith('b/'), f.path);
        for (const f of p.files.filter((x) => x.kind === 'header')) {
          assert.deepEqual(headerChangeIsHarmless(f), { ok: true }, `${id}: ${f.path}`);
        }
        // A hand-written runtime equivalent carries a zero commit id; fix.json then names the upstream commit.
        const own = p.upstreamCommit ?? p.commit?.id;
        const named = spec.commits?.map((c) => c.id) ?? [];
        if (own === '0'.repeat(40)) assert.ok(named.length > 0, `${id}: a runtime patch needs "commits" in fix.json`);
        else if (named.length > 0) assert.ok(named.includes(own), `${id}: fix.json commits ${named.join()}`);
      }
    });
  }
});
