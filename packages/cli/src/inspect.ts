import { readFile } from 'node:fs/promises';
import { Command, Option } from 'commander';
import { manifestValidator, parseJson, ValidationError, type PatchManifest } from '@livegraft/protocol';
import {
  cveImportCommand,
  cveUpdateCommand,
  inspectCommand,
  openDataset,
  type ImportFormat,
} from '@livegraft/inspector';

/**
 * The refreshed CVE dataset lives in the server's data directory so that
 * `livegraft cve import` and the server read the same file; without it the
 * dataset shipped in the repository is used.
 */
const DEFAULT_DATASET = './livegraft-data/cves.json.gz';

function datasetOption(): Option {
  return new Option('--dataset <path>', 'CVE dataset file (a refreshed copy; falls back to the shipped one)')
    .env('LIVEGRAFT_CVE_DATASET')
    .default(DEFAULT_DATASET);
}

async function readManifest(path: string): Promise<PatchManifest> {
  try {
    return parseJson(manifestValidator, await readFile(path, 'utf8'), path);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(`patch manifest ${path}`, err.problems);
    throw err;
  }
}

export function inspectCommands(): Command[] {
  const inspect = new Command('inspect')
    .description('list the known CVEs affecting a kernel: paste `uname -r` and/or /proc/version, or a version')
    .requiredOption('--kernel <string>', 'e.g. "6.1.100", or the /proc/version line of a host')
    .addOption(datasetOption())
    .option('--applied <manifest>', 'the manifest of the live patch level the host runs: its CVEs count as fixed live')
    .option('--json', 'print JSON')
    .action(async (o: { kernel: string; dataset: string; applied?: string; json?: boolean }) => {
      const db = await openDataset(o.dataset);
      const applied = o.applied === undefined ? undefined : await readManifest(o.applied);
      const out = inspectCommand(db, { kernel: o.kernel, json: o.json === true, ...(applied ? { applied } : {}) });
      console.log(out.output);
    });

  const cve = new Command('cve').description('the CVE knowledge base');
  cve
    .command('import')
    .description('refresh the CVE dataset from kernel CNA records, OSV, or compact JSON Lines')
    .argument('<file>')
    .addOption(new Option('--format <format>', 'input format').choices(['auto', 'cna', 'osv', 'jsonl']).default('auto'))
    .addOption(datasetOption())
    .option('--json', 'print JSON')
    .action(async (file: string, o: { format: ImportFormat; dataset: string; json?: boolean }) => {
      const { output, result } = await cveImportCommand({ file, format: o.format, dataset: o.dataset });
      console.log(o.json ? JSON.stringify(result, null, 2) : output);
    });
  cve
    .command('update')
    .description(
      "refresh the CVE dataset: Debian's kernel changelogs from the configured apt archive, and kernel CNA records (CVE JSON 5) from files or directories",
    )
    .option('--cna <file|dir...>', 'kernel CNA records: .json/.jsonl files, or directories searched for them (offline)')
    .option('--no-debian', "skip reading Debian's kernel changelogs from the apt archive")
    .addOption(datasetOption())
    .option('--json', 'print JSON')
    .action(async (o: { cna?: string[]; debian: boolean; dataset: string; json?: boolean }) => {
      const { output, result } = await cveUpdateCommand(
        { dataset: o.dataset, debian: o.debian, ...(o.cna === undefined ? {} : { cna: o.cna }) },
        { log: (line) => console.error(line) },
      );
      console.log(o.json ? JSON.stringify(result, null, 2) : output.trimEnd());
    });
  return [inspect, cve];
}
