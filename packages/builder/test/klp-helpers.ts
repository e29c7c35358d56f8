import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SymbolLocation, SymbolQuery, SymbolResolver } from '../src/klp/index.ts';

/** Flags that make host gcc output look like a 6.1 x86-64 kernel object. */
export const KERNEL_LIKE_CFLAGS = [
  '-O2',
  '-c',
  '-ffunction-sections',
  '-fdata-sections',
  '-fno-pic',
  '-mcmodel=kernel',
  '-fno-asynchronous-unwind-tables',
  '-pg',
  '-mrecord-mcount',
  '-mnop-mcount',
  '-mfentry',
  '-fno-stack-protector',
  '-fno-common',
];

export interface Compiler {
  dir: string;
  compile(name: string, source: string, extra?: string[]): Buffer;
  cleanup(): void;
}

export function compiler(): Compiler {
  const dir = mkdtempSync(join(tmpdir(), 'lg-klp-'));
  return {
    dir,
    compile(name, source, extra = []) {
      const c = join(dir, `${name}.c`);
      const o = join(dir, `${name}.o`);
      writeFileSync(c, source);
      execFileSync('gcc', [...KERNEL_LIKE_CFLAGS, ...extra, c, '-o', o], { stdio: 'pipe', timeout: 60_000 });
      return readFileSync(o);
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A resolver over a fixed table: name → location, or a function of the query. */
export function fakeResolver(
  table: Record<string, SymbolLocation | ((q: SymbolQuery) => SymbolLocation | undefined)>,
): SymbolResolver & { queries: SymbolQuery[] } {
  const queries: SymbolQuery[] = [];
  return {
    queries,
    resolve(q) {
      queries.push(q);
      const e = table[q.name];
      return typeof e === 'function' ? e(q) : e;
    },
  };
}

export function readelf(args: string[], file: string): string {
  return execFileSync('readelf', ['-W', ...args, file], { encoding: 'utf8', timeout: 60_000 });
}
