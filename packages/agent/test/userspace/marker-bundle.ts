// Test support: a hand-made user-space level for Debian's libc 2.36: abs()
// becomes labs(x) + 1000 (fixtures/abs-marker.s), optionally pause() too.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { UserspaceManifest } from '@livegraft/protocol';
import { dynSymbol, fileBuildId, LIBC_VERSION } from './debian-libc.ts';

const SOURCE = fileURLToPath(new URL('./fixtures/abs-marker.s', import.meta.url));

export interface MarkerOptions {
  level?: number;
  /** Replace these functions (default abs); `pause` enters the second stub. */
  functions?: ('abs' | 'pause')[];
  /** Claim another build-id than the library's. */
  buildId?: string;
}

/** Writes the level into `dir` (manifest + code object) and returns the manifest path. */
export function writeMarkerBundle(libc: string, dir: string, opts: MarkerOptions = {}): string {
  mkdirSync(dir, { recursive: true });
  const level = opts.level ?? 1;
  const obj = join(dir, `abs-marker-${level}.o`);
  execFileSync('gcc', ['-c', '-o', obj, SOURCE]);
  const object = readFileSync(obj);
  const labs = dynSymbol(libc, 'labs');
  const entries = { abs: 0, pause: 16 };
  const functions = (opts.functions ?? ['abs']).map((name) => {
    const s = dynSymbol(libc, name);
    return {
      symbol: name,
      local: false,
      offset: s.offset,
      size: s.size,
      sha256: s.sha256,
      codeOffset: entries[name],
      fixes: ['test-abs-marker'],
    };
  });
  const manifest: UserspaceManifest = {
    schema: 1,
    kind: 'userspace',
    library: {
      buildId: opts.buildId ?? fileBuildId(libc),
      soname: 'libc.so.6',
      package: 'libc6',
      version: LIBC_VERSION,
      sourcePackage: 'glibc',
      arch: 'amd64',
      path: '/lib/x86_64-linux-gnu/libc.so.6',
    },
    level,
    functions,
    relocs: [
      { offset: 4, kind: 'pc32', base: 'library', target: labs.offset, addend: -4, symbol: 'labs' },
      { offset: 24, kind: 'abs64', base: 'library', target: labs.offset, addend: 0, symbol: 'labs' },
    ],
    code: {
      file: `abs-marker-${level}.o`,
      sha256: createHash('sha256').update(object).digest('hex'),
      size: object.length,
      textSize: 32,
    },
    fixes: [
      {
        id: 'test-abs-marker',
        title: 'abs returns a marker',
        cves: [],
        functions: functions.map((f) => f.symbol),
      },
    ],
    cves: [],
    builtAt: new Date().toISOString(),
    builder: 'test',
  };
  const path = join(dir, `abs-marker-${level}.json`);
  writeFileSync(path, `${JSON.stringify(manifest, null, 2)}\n`);
  return path;
}
