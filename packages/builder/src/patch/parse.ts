import { LivegraftError, type FixCommit } from '@livegraft/protocol';

/** A kernel fix is a few kilobytes; a tree-wide refactoring is not something to live-patch. */
export const MAX_PATCH_BYTES = 2 * 1024 * 1024;
/** Files one patch may touch. */
const MAX_PATCH_FILES = 200;

export type TouchedKind = 'c' | 'header' | 'assembly' | 'build' | 'ignored';

/** One file a patch touches, with the path relative to the kernel tree (after -p1). */
export interface TouchedFile {
  path: string;
  op: 'modify' | 'add' | 'delete';
  kind: TouchedKind;
  hunks: number;
  /** Lines the patch adds and removes in this file, without the leading +/-. */
  added: string[];
  removed: string[];
}

export interface ParsedPatch {
  /** The patch as the user named it (for messages). */
  shown: string;
  commit: FixCommit | undefined;
  /** The mainline commit a stable backport names ("commit X upstream", "[ Upstream commit X ]"). */
  upstreamCommit: string | undefined;
  files: TouchedFile[];
  /** Leading path components to strip: 1 for a/ b/ prefixes, 0 for bare tree paths. */
  strip: 0 | 1;
}

function invalid(shown: string, what: string, details?: Record<string, unknown>): LivegraftError {
  return new LivegraftError('PATCH_INVALID', `${shown}: ${what}`, details === undefined ? undefined : { details });
}

/** What a touched path is to the builder. */
export function classifyPath(p: string): TouchedKind {
  if (/^(Documentation|tools|samples|LICENSES)\//.test(p) || p === 'MAINTAINERS' || /\/selftests\//.test(p))
    return 'ignored';
  if (p.endsWith('.c')) return 'c';
  if (p.endsWith('.h')) return 'header';
  if (p.endsWith('.S') || p.endsWith('.s')) return 'assembly';
  if (/(^|\/)(Makefile|Kbuild|Kconfig[^/]*)$/.test(p) || p.endsWith('.lds') || p.endsWith('.lds.S')) return 'build';
  return 'ignored';
}

function headerValue(lines: string[], start: number): string {
  // RFC 822 folding: continuation lines begin with white space.
  let v = (lines[start] ?? '').replace(/^[A-Za-z-]+:\s*/, '');
  for (let i = start + 1; i < lines.length && /^[ \t]/.test(lines[i] ?? ''); i++) v += ` ${(lines[i] ?? '').trim()}`;
  return v.trim();
}

function diffPath(raw: string): string | undefined {
  // "--- a/net/ipv4/icmp.c\t2024-01-01 ..." : the path ends at a tab (diff -u adds a date).
  const p = raw.split('\t')[0]?.trim() ?? '';
  return p === '/dev/null' ? undefined : p;
}

function stripOne(p: string): string {
  const i = p.indexOf('/');
  return i < 0 ? p : p.slice(i + 1);
}

function checkRelative(shown: string, p: string): void {
  if (p.startsWith('/') || p.split('/').includes('..') || p === '' || /[\0\n]/.test(p)) {
    throw invalid(shown, `refusing path "${p}": a patch must name files inside the kernel tree`);
  }
}

/**
 * Reads a unified diff (`git format-patch` or `diff -u` output): the commit
 * named in its headers, and every file it touches with its hunks. Paths are
 * returned relative to the kernel tree; `strip` says how many components
 * the raw paths carried (guessed from a/ b/ prefixes; `treeHas` settles
 * plain diffs whose first component is a directory name).
 */
export function parsePatch(text: string, shown: string, treeHas?: (path: string) => boolean): ParsedPatch {
  if (Buffer.byteLength(text) > MAX_PATCH_BYTES) {
    throw invalid(shown, `too large (${Buffer.byteLength(text)} bytes, limit ${MAX_PATCH_BYTES})`);
  }
  if (text.includes('\0')) throw invalid(shown, 'contains NUL bytes: not a text patch');
  if (/^(GIT binary patch|Binary files .* differ)$/m.test(text)) {
    throw invalid(shown, 'holds a binary patch; only text diffs can be built');
  }
  const lines = text.split('\n');

  let commitId: string | undefined;
  let subject: string | undefined;
  const from = /^From ([0-9a-f]{40}) /.exec(lines[0] ?? '');
  if (from) commitId = from[1];
  const diffStart = lines.findIndex((l) => l.startsWith('--- ') || l.startsWith('diff --git '));
  const head = diffStart < 0 ? lines : lines.slice(0, diffStart);
  const subjIdx = head.findIndex((l) => /^Subject:/i.test(l));
  if (subjIdx >= 0) subject = headerValue(head, subjIdx).replace(/^(\[[^\]]*\]\s*)+/, '');
  const up =
    /^\s*\[\s*Upstream commit ([0-9a-f]{12,40})\s*\]/im.exec(head.join('\n')) ??
    /^commit ([0-9a-f]{12,40}) upstream\.?$/im.exec(head.join('\n'));

  const rawPairs: { oldP: string | undefined; newP: string | undefined; at: number }[] = [];
  const files: TouchedFile[] = [];
  let current: TouchedFile | undefined;
  let oldLeft = 0;
  let newLeft = 0;
  for (let i = diffStart < 0 ? lines.length : diffStart; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (oldLeft > 0 || newLeft > 0) {
      // Inside a hunk: count lines so that "--- " content lines are not taken for headers.
      if (l.startsWith('+')) {
        newLeft--;
        current?.added.push(l.slice(1));
      } else if (l.startsWith('-')) {
        oldLeft--;
        current?.removed.push(l.slice(1));
      } else if (l.startsWith(' ') || l === '') {
        oldLeft--;
        newLeft--;
      } else if (l.startsWith('\\')) {
        // "\ No newline at end of file"
      } else {
        throw invalid(
          shown,
          `line ${i + 1}: hunk ends early (expected ${oldLeft} more old and ${newLeft} more new lines)`,
        );
      }
      if (oldLeft < 0 || newLeft < 0)
        throw invalid(shown, `line ${i + 1}: the hunk has more lines than its @@ header counts`);
      continue;
    }
    if (l.startsWith('--- ') && (lines[i + 1] ?? '').startsWith('+++ ')) {
      const oldP = diffPath(l.slice(4));
      const newP = diffPath((lines[i + 1] ?? '').slice(4));
      if (oldP === undefined && newP === undefined) throw invalid(shown, `line ${i + 1}: both sides are /dev/null`);
      rawPairs.push({ oldP, newP, at: i + 1 });
      current = {
        path: newP ?? oldP ?? '',
        op: oldP === undefined ? 'add' : newP === undefined ? 'delete' : 'modify',
        kind: 'ignored',
        hunks: 0,
        added: [],
        removed: [],
      };
      files.push(current);
      if (files.length > MAX_PATCH_FILES) throw invalid(shown, `touches more than ${MAX_PATCH_FILES} files`);
      i++;
      continue;
    }
    const hunk = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(l);
    if (hunk) {
      if (!current) throw invalid(shown, `line ${i + 1}: hunk before any file header`);
      current.hunks++;
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
    }
  }
  if (oldLeft > 0 || newLeft > 0) throw invalid(shown, 'the last hunk is cut short');
  if (files.length === 0)
    throw invalid(shown, 'no unified diff found (expected "--- a/<path>" / "+++ b/<path>" lines)');
  const empty = files.find((f) => f.hunks === 0);
  if (empty) throw invalid(shown, `${empty.path}: file header without hunks`);

  // a/ b/ prefixes (git, or diff -u between two trees) mean -p1. A plain diff
  // of bare tree paths means -p0 (the same first component on both sides, as
  // with git --no-prefix or diff -u x.c.orig x.c); the tree, when given,
  // settles it by which reading names real files.
  for (const p of rawPairs) for (const raw of [p.oldP, p.newP]) if (raw !== undefined) checkRelative(shown, raw);
  const first = (p: string): string => p.slice(0, Math.max(0, p.indexOf('/')));
  const allPrefixed = rawPairs.every(
    (p) => (p.oldP === undefined || p.oldP.includes('/')) && (p.newP === undefined || p.newP.includes('/')),
  );
  const sameFirst = rawPairs.some(
    (p) => p.oldP !== undefined && p.newP !== undefined && first(p.oldP) === first(p.newP),
  );
  const gitPrefixes = rawPairs.every(
    (p) => (p.oldP === undefined || p.oldP.startsWith('a/')) && (p.newP === undefined || p.newP.startsWith('b/')),
  );
  let strip: 0 | 1 = allPrefixed && (gitPrefixes || !sameFirst) ? 1 : 0;
  if (allPrefixed && treeHas) {
    const asP1 = files.every((f) => f.op === 'add' || treeHas(stripOne(f.path)));
    const asP0 = files.every((f) => f.op === 'add' || treeHas(f.path));
    if (asP1 !== asP0) strip = asP1 ? 1 : 0;
  }
  for (const f of files) {
    if (strip === 1) f.path = stripOne(f.path);
    checkRelative(shown, f.path);
    f.kind = classifyPath(f.path);
  }
  const commit: FixCommit | undefined =
    subject === undefined ? undefined : commitId === undefined ? { subject } : { id: commitId, subject };
  return { shown, commit, upstreamCommit: up?.[1], files, strip };
}

/**
 * A header hunk the builder can accept without rebuilding every unit that
 * includes the header: only prototypes, macros, comments and blank lines
 * change. Anything else (a struct field, an inline function body) may change
 * code or layouts the builder cannot see from the patched .c files.
 */
export function headerChangeIsHarmless(file: TouchedFile): { ok: true } | { ok: false; line: string } {
  let inComment = false;
  let inMacro = false;
  for (const raw of [...file.added, ...file.removed]) {
    const l = raw.trim();
    if (inComment) {
      if (l.includes('*/')) inComment = false;
      continue;
    }
    if (inMacro) {
      inMacro = l.endsWith('\\');
      continue;
    }
    // A continued line (e.g. one changed in the middle of a multi-line macro) is macro text.
    if (l.endsWith('\\') && !l.startsWith('#')) {
      inMacro = true;
      continue;
    }
    if (l === '' || l.startsWith('//') || l.startsWith('*')) continue;
    if (l.startsWith('/*')) {
      inComment = !l.includes('*/');
      continue;
    }
    if (/^#\s*(define|undef)\b/.test(l)) {
      inMacro = l.endsWith('\\');
      continue;
    }
    if (/^#\s*(include|if|ifdef|ifndef|else|elif|endif)\b/.test(l)) continue;
    // A function pointer ("void (*fn)(int);") is a struct field or a variable, not a prototype.
    if (/\(\s*\*/.test(l)) return { ok: false, line: raw };
    // A prototype: a declaration that ends in ");" with no body and no assignment.
    if (/^(extern\s+)?[A-Za-z_][\w\s*,()[\]]*\([^{};=]*\)\s*(__\w+(\([^)]*\))?\s*)*;$/.test(l) && !l.includes('{'))
      continue;
    // Continuation lines of a multi-line prototype.
    if (/^[\w\s*,()[\]]+[,)]\s*;?$/.test(l) && !l.includes('{') && !l.includes('=')) continue;
    return { ok: false, line: raw };
  }
  return { ok: true };
}
