import { createHash } from 'node:crypto';
import {
  LivegraftError,
  MAX_FIX_BYTES,
  MAX_FIX_FILE_BYTES,
  MAX_FIX_FILES,
  type FixBundle,
  type FixSpec,
} from '@livegraft/protocol';
import { canonicalJson } from '../db/canonical-json.ts';

/** An upstream commit as fix.json or a patch header names it. */
export interface Commit {
  id: string | null;
  subject: string;
}

/** A submitted bundle, checked: its files decoded, its commits known, its canonical hash. */
export interface CheckedBundle {
  bundle: FixBundle;
  spec: FixSpec;
  files: Map<string, Buffer>;
  commits: Commit[];
  sha256: string;
  /** The canonical JSON the hash is over (what is stored). */
  json: string;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const MAX_PATCH_FILES = 200;

function invalid(code: string, message: string, path?: string): LivegraftError {
  return new LivegraftError(
    code,
    message,
    path === undefined ? undefined : { details: { problems: [{ path, message }] } },
  );
}

/** What a patch's headers say: the commit it is, and the mainline commit a stable backport names. */
export interface PatchFacts {
  commit: Commit | undefined;
  upstreamCommit: string | undefined;
  files: number;
  hunks: number;
}

/**
 * Checks that text is a unified diff (`git format-patch` or `diff -u`) with
 * at least one file and every hunk whole, and reads the commit from its
 * headers. Whether it applies to a given kernel build is only known when a
 * worker applies it to that build's source.
 */
export function checkPatch(text: string, shown: string): PatchFacts {
  const bad = (what: string): LivegraftError => invalid('PATCH_INVALID', `${shown}: ${what}`, `/files/${shown}`);
  if (text.includes('\0')) throw bad('contains NUL bytes: not a text patch');
  if (/^(GIT binary patch|Binary files .* differ)$/m.test(text))
    throw bad('holds a binary patch; only text diffs can be built');
  const lines = text.split('\n');
  // The newline ending the last line starts no line of its own.
  if (lines.at(-1) === '') lines.pop();
  const from = /^From ([0-9a-f]{40}) /.exec(lines[0] ?? '');
  const diffStart = lines.findIndex((l) => l.startsWith('--- ') || l.startsWith('diff --git '));
  const head = diffStart < 0 ? lines : lines.slice(0, diffStart);
  const subjIdx = head.findIndex((l) => /^Subject:/i.test(l));
  let subject: string | undefined;
  if (subjIdx >= 0) {
    subject = (head[subjIdx] ?? '').replace(/^Subject:\s*/i, '');
    for (let i = subjIdx + 1; i < head.length && /^[ \t]/.test(head[i] ?? ''); i++)
      subject += ` ${(head[i] ?? '').trim()}`;
    subject = subject.replace(/^(\[[^\]]*\]\s*)+/, '').trim();
  }
  const headText = head.join('\n');
  const up =
    /^\s*\[\s*Upstream commit ([0-9a-f]{12,40})\s*\]/im.exec(headText) ??
    /^commit ([0-9a-f]{12,40}) upstream\.?$/im.exec(headText);

  let files = 0;
  let hunks = 0;
  let fileHunks = -1;
  let oldLeft = 0;
  let newLeft = 0;
  for (let i = diffStart < 0 ? lines.length : diffStart; i < lines.length; i++) {
    const l = lines[i] ?? '';
    if (oldLeft > 0 || newLeft > 0) {
      if (l.startsWith('+')) newLeft--;
      else if (l.startsWith('-')) oldLeft--;
      else if (l.startsWith(' ') || l === '') {
        oldLeft--;
        newLeft--;
      } else if (!l.startsWith('\\')) {
        throw bad(`line ${i + 1}: hunk ends early (expected ${oldLeft} more old and ${newLeft} more new lines)`);
      }
      if (oldLeft < 0 || newLeft < 0) throw bad(`line ${i + 1}: the hunk has more lines than its @@ header counts`);
      continue;
    }
    if (l.startsWith('--- ') && (lines[i + 1] ?? '').startsWith('+++ ')) {
      if (fileHunks === 0) throw bad(`line ${i + 1}: the previous file header has no hunks`);
      const paths = [l.slice(4), (lines[i + 1] ?? '').slice(4)].map((p) => p.split('\t')[0]?.trim() ?? '');
      for (const p of paths) {
        if (p !== '/dev/null' && (p.startsWith('/') || p.split('/').includes('..') || p === '')) {
          throw bad(`line ${i + 1}: refusing path "${p}": a patch must name files inside the kernel tree`);
        }
      }
      files++;
      if (files > MAX_PATCH_FILES) throw bad(`touches more than ${MAX_PATCH_FILES} files`);
      fileHunks = 0;
      i++;
      continue;
    }
    const hunk = /^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@/.exec(l);
    if (hunk) {
      if (files === 0) throw bad(`line ${i + 1}: hunk before any file header`);
      hunks++;
      fileHunks++;
      oldLeft = hunk[1] === undefined ? 1 : Number(hunk[1]);
      newLeft = hunk[2] === undefined ? 1 : Number(hunk[2]);
    }
  }
  if (oldLeft > 0 || newLeft > 0) throw bad('the last hunk is cut short');
  if (files === 0) throw bad('no unified diff found (expected "--- a/<path>" and "+++ b/<path>" lines)');
  if (hunks === 0 || fileHunks === 0) throw bad('a file header without hunks: the patch changes nothing');
  const commit = subject === undefined ? undefined : { id: from?.[1] ?? null, subject };
  return { commit, upstreamCommit: up?.[1], files, hunks };
}

/**
 * Checks a submitted fix directory: sizes, file names, that every file
 * fix.json names is there, that patches are whole unified diffs, and that it
 * names a CVE. Returns it decoded with its canonical sha256.
 */
export function checkBundle(bundle: FixBundle): CheckedBundle {
  const spec = bundle.spec;
  if (spec.cves.length === 0) {
    throw invalid(
      'FIX_NO_CVE',
      `fix ${spec.id} names no CVE: list the CVE ids it closes in fix.json "cves"`,
      '/fix/spec/cves',
    );
  }
  if (bundle.files.length > MAX_FIX_FILES) {
    throw invalid(
      'FIX_INVALID',
      `a fix has at most ${MAX_FIX_FILES} files, this one ${bundle.files.length}`,
      '/fix/files',
    );
  }
  const files = new Map<string, Buffer>();
  let total = 0;
  for (const [i, f] of bundle.files.entries()) {
    const at = `/fix/files/${i}`;
    if (f.name === 'fix.json') throw invalid('FIX_INVALID', 'fix.json travels as "spec", not as a file', at);
    if (files.has(f.name)) throw invalid('FIX_INVALID', `file ${f.name} is given twice`, at);
    if (f.content.length % 4 !== 0 || !BASE64.test(f.content)) {
      throw invalid('FIX_INVALID', `file ${f.name}: the content is not base64`, `${at}/content`);
    }
    const bytes = Buffer.from(f.content, 'base64');
    if (bytes.length > MAX_FIX_FILE_BYTES) {
      throw invalid('FIX_INVALID', `file ${f.name} has ${bytes.length} bytes, the limit is ${MAX_FIX_FILE_BYTES}`, at);
    }
    total += bytes.length;
    if (total > MAX_FIX_BYTES) throw invalid('FIX_INVALID', `the fix's files exceed ${MAX_FIX_BYTES} bytes in all`, at);
    files.set(f.name, bytes);
  }
  const hasPatches = spec.patches !== undefined;
  const hasFunctions = spec.functions !== undefined;
  if (hasPatches === hasFunctions) {
    throw invalid(
      'FIX_INVALID',
      `fix ${spec.id} must give either "patches" (upstream diffs) or "functions" (hand-written replacements), exactly one`,
      '/fix/spec',
    );
  }
  const named: [string, string][] = [
    ...(spec.patches ?? []).map((p): [string, string] => [p, 'patches']),
    ...(spec.sources ?? []).map((p): [string, string] => [p, 'sources']),
    ...(spec.trigger === undefined ? [] : [[spec.trigger.source, 'trigger.source'] as [string, string]]),
  ];
  for (const [name, field] of named) {
    if (!files.has(name)) {
      throw invalid(
        'FIX_INVALID',
        `fix.json "${field}" names ${name}, which is not among the submitted files`,
        '/fix/files',
      );
    }
  }
  const fromPatches: Commit[] = [];
  for (const p of spec.patches ?? []) {
    const facts = checkPatch((files.get(p) ?? Buffer.alloc(0)).toString('utf8'), p);
    if (facts.commit !== undefined) {
      fromPatches.push({ id: facts.upstreamCommit ?? facts.commit.id, subject: facts.commit.subject });
    } else if (facts.upstreamCommit !== undefined) {
      fromPatches.push({ id: facts.upstreamCommit, subject: p });
    }
  }
  const commits: Commit[] =
    spec.commits !== undefined ? spec.commits.map((c) => ({ id: c.id ?? null, subject: c.subject })) : fromPatches;
  const canonical = { spec, files: [...bundle.files].sort((a, b) => (a.name < b.name ? -1 : 1)) };
  const json = canonicalJson(canonical);
  const sha256 = createHash('sha256').update(json, 'utf8').digest('hex');
  return { bundle: canonical, spec, files, commits, sha256, json };
}

/** Commit ids are equal when one is an abbreviation of the other (12+ hex digits). */
export function sameCommit(a: string, b: string): boolean {
  return a.length <= b.length ? b.startsWith(a) : a.startsWith(b);
}
