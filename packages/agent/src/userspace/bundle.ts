import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { LivegraftError, userspaceManifestValidator, type UserspaceManifest } from '@livegraft/protocol';
import { sectionOfObject } from './elf.ts';
import type { SavedEntry } from './native.ts';

/** A user-space level ready to apply: its manifest and the code block to map. */
export interface UserspaceBundle {
  manifest: UserspaceManifest;
  /** The code object file as delivered. */
  object: Buffer;
  /** Its `.text`: the bytes the helper maps. */
  text: Buffer;
}

/** Checks a manifest and its code object (hash, size, `.text` size) and returns the bundle. */
export function bundleFrom(manifestJson: unknown, object: Buffer): UserspaceBundle {
  const manifest = userspaceManifestValidator.parse(manifestJson);
  const sum = createHash('sha256').update(object).digest('hex');
  if (object.length !== manifest.code.size || sum !== manifest.code.sha256) {
    throw new LivegraftError(
      'USERSPACE_BAD_CODE',
      `code object ${manifest.code.file} does not match its manifest (sha256 ${sum}, ${object.length} bytes)`,
    );
  }
  const text = sectionOfObject(object, '.text');
  if (text.length !== manifest.code.textSize) {
    throw new LivegraftError(
      'USERSPACE_BAD_CODE',
      `.text is ${text.length} bytes, the manifest says ${manifest.code.textSize}`,
    );
  }
  for (const fn of manifest.functions) {
    if (fn.codeOffset >= text.length) {
      throw new LivegraftError('USERSPACE_BAD_CODE', `${fn.symbol} enters at ${fn.codeOffset}, outside the code`);
    }
  }
  for (const r of manifest.relocs) {
    if (r.offset + (r.kind === 'abs64' ? 8 : 4) > text.length) {
      throw new LivegraftError('USERSPACE_BAD_CODE', `a relocation at ${r.offset} lies outside the code`);
    }
  }
  return { manifest, object, text };
}

/** Reads a manifest file and the code object beside it. */
export function loadBundle(manifestPath: string): UserspaceBundle {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(manifestPath, 'utf8'));
  } catch (e) {
    throw new LivegraftError('USERSPACE_BAD_MANIFEST', `cannot read ${manifestPath}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const file = (json as { code?: { file?: unknown } }).code?.file;
  if (typeof file !== 'string' || file.includes('/')) {
    return bundleFrom(json, Buffer.alloc(0)); // the validator names what is wrong
  }
  let object: Buffer;
  try {
    object = readFileSync(join(dirname(manifestPath), file));
  } catch (e) {
    throw new LivegraftError('USERSPACE_BAD_CODE', `the code object ${file} is not beside ${manifestPath}`, {
      cause: e,
    });
  }
  return bundleFrom(json, object);
}

function common(m: UserspaceManifest, pid: number, base: number, attempts: number): string[] {
  return [`pid ${pid}`, `base ${base.toString(16)}`, `buildid ${m.library.buildId}`, `attempts ${attempts}`];
}

/** The helper's plan to apply a bundle in one process. */
export function applyPlan(b: UserspaceBundle, pid: number, base: number, attempts = 20): string {
  const m = b.manifest;
  const lines = common(m, pid, base, attempts);
  lines.push(`text ${b.text.toString('hex')}`);
  for (const r of m.relocs) lines.push(`reloc ${r.offset} ${r.kind} ${r.base} ${r.target} ${r.addend}`);
  for (const f of m.functions) lines.push(`func ${f.offset} ${f.size} ${f.sha256} ${f.codeOffset}`);
  return `${lines.join('\n')}\n`;
}

/** The helper's plan to undo an apply exactly: the same functions, the bytes it saved, where the code is. */
export function revertPlan(
  m: UserspaceManifest,
  p: { pid: number; base: number; code: string; functions: SavedEntry[] },
  attempts = 20,
): string {
  const lines = common(m, p.pid, p.base, attempts);
  lines.push(`code ${p.code.replace(/^0x/, '')} ${m.code.textSize}`);
  for (const f of m.functions) {
    const saved = p.functions.find((s) => s.offset === f.offset)?.saved;
    if (saved === undefined || !/^[0-9a-f]{10}$/.test(saved)) {
      throw new LivegraftError('USERSPACE_STATE', `no saved entry bytes for ${f.symbol} in process ${p.pid}`);
    }
    lines.push(`func ${f.offset} ${f.size} ${f.sha256} ${f.codeOffset} ${saved}`);
  }
  return `${lines.join('\n')}\n`;
}
