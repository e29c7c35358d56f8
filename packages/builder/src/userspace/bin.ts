#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { parseArgs, runMain, stopSignal } from '../cli-main.ts';
import { defaultCacheDir } from '../kernel/paths.ts';
import { spawnRunner } from '../runner.ts';
import { buildUserspaceLevel, readUserspaceFix } from './build.ts';

function parseLevel(value: string): number {
  if (!/^[1-9][0-9]{0,6}$/.test(value)) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}

interface CliOptions {
  level: number;
  out?: string;
  json?: boolean;
  cacheDir?: string;
  quiet?: boolean;
}

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('livegraft-build-userspace')
    .description(
      'Build one cumulative user-space level (a code object and its manifest) for one shared library build, from fixes against its Debian source package.',
    )
    .requiredOption('-l, --level <n>', 'cumulative level for this library build (1, 2, ...)', parseLevel)
    .option('-o, --out <dir>', 'where to write <name>.o and <name>.json (default: current directory)')
    .option('--json', 'print the manifest as JSON instead of a summary')
    .option(
      '--cache-dir <dir>',
      'where source and binary packages are kept (default $LIVEGRAFT_CACHE_DIR, else ~/.cache/livegraft)',
    )
    .option('-q, --quiet', 'no progress lines on stderr')
    .argument('<fix-dirs...>', 'user-space fix directories, each holding fix.json and its upstream patches');
  const early = parseArgs(program, argv);
  if (early !== undefined) return early;
  const opts = program.opts<CliOptions>();
  const cancel = stopSignal();
  try {
    const fixes = await Promise.all(program.args.map((d) => readUserspaceFix(d)));
    const r = await buildUserspaceLevel({
      fixes,
      level: opts.level,
      outDir: opts.out ?? process.cwd(),
      cacheDir: opts.cacheDir ?? defaultCacheDir(),
      run: spawnRunner,
      signal: cancel.signal,
      log: (line) => {
        if (opts.quiet !== true) process.stderr.write(`${line}\n`);
      },
    });
    if (opts.json === true) {
      process.stdout.write(`${JSON.stringify(r.manifest, null, 2)}\n`);
    } else {
      const m = r.manifest;
      const lines = [
        `${m.library.soname} ${m.library.package} ${m.library.version} (build-id ${m.library.buildId}), level ${m.level}`,
        ...m.functions.map(
          (f) => `  ${f.symbol}${f.local ? ' (local)' : ''} at 0x${f.offset.toString(16)}, ${f.size} bytes`,
        ),
        `  CVEs: ${m.cves.join(', ')}`,
        ...Object.entries(r.matches).map(
          ([u, x]) => `  ${u}: ${x.matched}/${x.compared} functions rebuilt identical to the shipped library`,
        ),
        `  ${r.objectPath}`,
        `  ${r.manifestPath}`,
      ];
      process.stdout.write(`${lines.join('\n')}\n`);
    }
    return 0;
  } finally {
    cancel.dispose();
  }
}

runMain(main);
