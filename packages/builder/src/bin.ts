#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { buildPatch } from './build.ts';
import { parseArgs, runMain, stopSignal } from './cli-main.ts';
import { formatSummary } from './summary.ts';

function parseLevel(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('must be a positive integer');
  return Number(value);
}

interface CliOptions {
  kernel: string;
  level: number;
  out?: string;
  json?: boolean;
  procVersion?: string;
  cacheDir?: string;
  force?: boolean;
  quiet?: boolean;
  rebuild?: boolean;
}

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('livegraft-build')
    .description('Compile fixes into one cumulative livepatch module for one exact kernel build.')
    .requiredOption('-k, --kernel <dir|release>', 'kernel headers directory, or a release such as $(uname -r)')
    .requiredOption('-l, --level <n>', 'cumulative patch level (1, 2, ...)', parseLevel)
    .option('-o, --out <dir>', 'where to write <name>.ko and <name>.json (default: current directory)')
    .option('--proc-version <file>', "use this file's first line as the target's /proc/version")
    .option('--json', 'print the manifest as JSON instead of a summary')
    .option(
      '--cache-dir <dir>',
      'where kernel builds are downloaded and prepared (default $LIVEGRAFT_CACHE_DIR, else ~/.cache/livegraft)',
    )
    .option('--force', 'build from patches even if the unpatched code does not match the shipped kernel')
    .option(
      '--rebuild',
      'compile every patched unit again instead of reusing objects cached for this fix and kernel build',
    )
    .option('-q, --quiet', 'no progress lines on stderr')
    .argument('<fix-dirs...>', 'fix directories, each holding fix.json and either upstream patches or C sources');
  const early = parseArgs(program, argv);
  if (early !== undefined) return early;
  const opts = program.opts<CliOptions>();
  // make runs in its own process group (so a timeout can kill all of it); on Ctrl-C or
  // SIGTERM, stop it ourselves and let buildPatch remove the build directory.
  const cancel = stopSignal();
  const result = await buildPatch({
    signal: cancel.signal,
    kernel: opts.kernel,
    level: opts.level,
    fixDirs: program.args,
    outDir: opts.out,
    procVersionFile: opts.procVersion,
    cacheDir: opts.cacheDir,
    force: opts.force === true,
    noCompileCache: opts.rebuild === true,
    log: opts.quiet === true ? undefined : (line: string) => process.stderr.write(`${line}\n`),
  });
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(result.manifest, null, 2)}\n`);
    for (const w of result.warnings) process.stderr.write(`warning: ${w}\n`);
  } else {
    process.stdout.write(formatSummary(result));
  }
  return 0;
}

runMain(main);
