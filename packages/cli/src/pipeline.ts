import { lstat, readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Command } from 'commander';
import {
  fixSpecValidator,
  LivegraftError,
  MAX_FIX_BYTES,
  MAX_FIX_FILE_BYTES,
  MAX_FIX_FILES,
  type CoverageCell,
  type CoverageReport,
  type FixBundle,
  type FixRecord,
  type JobRecord,
} from '@livegraft/protocol';
import { connected, FleetApi, type FleetOpts } from './fleet-api.ts';
import { table } from './format.ts';
import { bundleFromPatch, type BarePatchOptions } from './patch-bundle.ts';

/** fix.json is prose and a few lists. */
const MAX_FIX_JSON_BYTES = 64 * 1024;
const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}$/;

function out(o: FleetOpts, value: unknown, text: () => void): void {
  if (o.json === true) console.log(JSON.stringify(value, null, 2));
  else text();
}

/**
 * A fix directory as the server takes it: fix.json, every file it names
 * (patches, sources, trigger), and the other small regular files beside them
 * (trigger.modules, qemu.json, notes). Bounded by the protocol's limits.
 */
export async function readFixDir(dir: string, warn: (line: string) => void = () => {}): Promise<FixBundle> {
  const specPath = join(dir, 'fix.json');
  let text: string;
  try {
    const st = await lstat(specPath);
    if (!st.isFile()) throw new LivegraftError('FIX_INVALID', `${specPath} is not a regular file`);
    if (st.size > MAX_FIX_JSON_BYTES) {
      throw new LivegraftError(
        'FIX_INVALID',
        `${specPath} has ${st.size} bytes; fix.json is at most ${MAX_FIX_JSON_BYTES}`,
      );
    }
    text = await readFile(specPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new LivegraftError(
        'FIX_INVALID',
        `${dir} has no fix.json: a fix directory holds fix.json and the files it names`,
      );
    }
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new LivegraftError('FIX_INVALID', `${specPath} is not JSON: ${(err as Error).message}`);
  }
  const spec = fixSpecValidator.parse(raw);
  const named = [
    ...(spec.patches ?? []),
    ...(spec.sources ?? []),
    ...(spec.trigger === undefined ? [] : [spec.trigger.source]),
  ];
  const files: FixBundle['files'] = [];
  let total = 0;
  const add = async (name: string, required: boolean): Promise<void> => {
    const path = join(dir, name);
    let st;
    try {
      st = await lstat(path);
    } catch {
      throw new LivegraftError('FIX_INVALID', `fix.json names ${name}, but ${path} does not exist`);
    }
    if (!st.isFile()) {
      if (required)
        throw new LivegraftError('FIX_INVALID', `fix.json names ${name}, but ${path} is not a regular file`);
      return;
    }
    if (st.size > MAX_FIX_FILE_BYTES || total + st.size > MAX_FIX_BYTES || files.length >= MAX_FIX_FILES) {
      const why = `${path} (${st.size} bytes) would pass the limits of a fix (${MAX_FIX_FILES} files, ${MAX_FIX_FILE_BYTES} bytes each, ${MAX_FIX_BYTES} in all)`;
      if (required) throw new LivegraftError('FIX_INVALID', why);
      warn(`left out: ${why}`);
      return;
    }
    const bytes = await readFile(path);
    total += bytes.length;
    files.push({ name, content: bytes.toString('base64') });
  };
  for (const name of new Set(named)) await add(name, true);
  const others = (await readdir(dir)).filter((n) => n !== 'fix.json' && !named.includes(n)).sort();
  for (const name of others) {
    if (!FILE_NAME.test(name)) continue;
    await add(name, false);
  }
  return { spec, files };
}

function planTable(f: FixRecord): string {
  return table(
    ['KERNEL', 'RELEASE', 'PLAN', 'JOB', 'LEVEL', 'DETAIL'],
    f.plan.map((p) => [
      p.kernelId.slice(0, 12),
      p.release,
      p.state,
      p.jobId === null ? '-' : `${p.jobId.slice(0, 8)} ${p.jobState ?? ''}`.trim(),
      p.level === null ? '-' : String(p.level),
      p.version ?? p.reason ?? '',
    ]),
  );
}

function printFix(f: FixRecord): void {
  console.log(`${f.id}: ${f.title}`);
  console.log(`  CVEs: ${f.cves.join(', ')}`);
  for (const c of f.commits) console.log(`  commit ${c.id ?? '(no id)'} ${c.subject}`);
  console.log(`  submitted ${f.submittedAt} by ${f.submittedBy}, sha256 ${f.sha256}`);
  console.log(f.plan.length === 0 ? '  (no kernel build in the fleet yet)' : planTable(f));
}

export function fixesCommand(server: string): Command {
  const list = async (o: FleetOpts): Promise<void> => {
    const fixes = await new FleetApi(o).get<FixRecord[]>('/fixes');
    out(o, fixes, () =>
      console.log(
        table(
          ['FIX', 'CVES', 'SUBMITTED', 'PLAN'],
          fixes.map((f) => {
            const counts = new Map<string, number>();
            for (const p of f.plan) counts.set(p.state, (counts.get(p.state) ?? 0) + 1);
            return [f.id, f.cves.join(','), f.submittedAt, [...counts].map(([s, n]) => `${n} ${s}`).join(', ') || '-'];
          }),
        ),
      ),
    );
  };
  const fixes = connected(new Command('fixes').description('fixes submitted to the build pipeline'), server).action(
    list,
  );
  fixes.addCommand(connected(new Command('list').description('list submitted fixes'), server).action(list));
  fixes.addCommand(
    connected(new Command('show').description('a fix and its plan per kernel build').argument('<id>'), server).action(
      async (id: string, o: FleetOpts) => {
        const f = await new FleetApi(o).get<FixRecord>(`/fixes/${encodeURIComponent(id)}`);
        out(o, f, () => printFix(f));
      },
    ),
  );
  fixes.addCommand(
    connected(
      new Command('submit')
        .description(
          'submit a fix directory (fix.json and its files), or an upstream patch with --cve: built and validated for every fleet kernel build',
        )
        .argument('<dir-or-patch>')
        .option('--cve <id...>', 'with a bare patch: the CVE ids it fixes')
        .option('--id <id>', 'with a bare patch: the fix id (default: the first CVE)')
        .option(
          '--fixed-in <branch=version...>',
          'with a bare patch: where it entered a stable branch, e.g. 6.1=6.1.177',
        ),
      server,
    ).action(async (dir: string, o: FleetOpts & BarePatchOptions) => {
      const bundle = (await stat(dir)).isFile()
        ? await bundleFromPatch(dir, o)
        : await readFixDir(dir, (line) => console.error(line));
      const f = await new FleetApi(o).send<FixRecord>('POST', '/fixes', { fix: bundle });
      out(o, f, () => printFix(f));
    }),
  );
  return fixes;
}

export function jobsCommand(server: string): Command {
  return connected(new Command('jobs').description('build jobs: one per fix and kernel build'), server).action(
    async (o: FleetOpts) => {
      const jobs = await new FleetApi(o).get<JobRecord[]>('/jobs');
      out(o, jobs, () =>
        console.log(
          table(
            ['JOB', 'FIX', 'KERNEL', 'RELEASE', 'STATE', 'OUTCOME', 'LEVEL', 'TRIES', 'WORKER', 'VALIDATION', 'REASON'],
            jobs.map((j) => [
              j.id.slice(0, 8),
              j.fixId,
              j.kernelId.slice(0, 12),
              j.release,
              j.phase === null ? j.state : `${j.state}(${j.phase})`,
              j.outcome ?? '-',
              j.level === null ? '-' : String(j.level),
              String(j.attempts),
              j.worker ?? '-',
              j.validation?.result ?? '-',
              (j.reason ?? '').slice(0, 80),
            ]),
          ),
        ),
      );
    },
  );
}

function cellText(c: CoverageCell): string {
  switch (c.state) {
    case 'applied':
      return `applied ${c.hostsApplied}/${c.hosts} (l${c.level ?? '?'})`;
    case 'fixed-in-build':
      return `fixed in ${c.version ?? 'build'}`;
    case 'released':
    case 'validated':
    case 'built':
      return c.level === null ? c.state : `${c.state} l${c.level}`;
    default:
      return c.state;
  }
}

export function coverageCommand(server: string): Command {
  return connected(
    new Command('coverage').description('CVE x kernel build: where each CVE affecting the fleet stands'),
    server,
  )
    .option('--all', 'also list CVEs not affecting any build (fixed everywhere)')
    .action(async (o: FleetOpts & { all?: boolean }) => {
      const report = await new FleetApi(o).get<CoverageReport>('/coverage');
      out(o, report, () => {
        const rows = report.rows.filter(
          (r) => o.all === true || r.cells.some((c) => c.state !== 'not-affected' && c.state !== 'fixed-in-build'),
        );
        console.log(
          table(
            ['CVE', 'CVSS', ...report.kernels.map((k) => `${k.release} (${k.kernelId.slice(0, 8)}, ${k.hosts}h)`)],
            rows.map((r) => [r.cve, r.cvss === null ? '-' : String(r.cvss), ...r.cells.map(cellText)]),
          ),
        );
        const open = report.rows.filter((r) => r.cells.some((c) => c.state === 'no-fix')).length;
        console.log(`\n${report.rows.length} CVEs, ${open} with no fix on some build; generated ${report.generatedAt}`);
      });
    });
}
