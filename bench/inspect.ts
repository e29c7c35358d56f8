/**
 * Fleet evaluation benchmark for the CVE inspector: N hosts spread over a realistic set of
 * distinct kernels (5.4/5.10/5.15/6.1/6.6/6.12; bare versions, Debian /proc/version lines,
 * Ubuntu version signatures), each host with or without live-patched CVEs.
 *
 *   node --import tsx bench/inspect.ts [--hosts 100000] [--kernels 200] [--seed 42]
 *
 * Prints {hosts, distinctKernels, cves, loadMs, evalMs, hostsPerSec, rssMb} as JSON.
 */
import { parseArgs } from 'node:util';
import { affected, exposureSummary, loadDefaultDataset } from '../packages/inspector/src/index.ts';

const { values } = parseArgs({
  options: {
    hosts: { type: 'string', default: '100000' },
    kernels: { type: 'string', default: '200' },
    seed: { type: 'string', default: '42' },
  },
});
const HOSTS = Number(values.hosts);
const KERNELS = Number(values.kernels);

// mulberry32: deterministic, so runs are comparable.
let state = Number(values.seed) >>> 0;
function rand(): number {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;

const t0 = performance.now();
const db = await loadDefaultDataset();
const loadMs = performance.now() - t0;

// Highest sublevel per branch seen in the data, so generated versions are real ones.
const BRANCHES = ['5.4', '5.10', '5.15', '6.1', '6.6', '6.12'];
const maxSub = new Map<string, number>();
for (const e of db.entries.values()) {
  for (const p of e.pairs) {
    for (const v of [p.first, p.fixed]) {
      if (v !== null && BRANCHES.includes(v.branch))
        maxSub.set(v.branch, Math.max(maxSub.get(v.branch) ?? 0, v.sublevel));
    }
  }
}
const debianVersions = db.debian.changelogs.flatMap((c) =>
  c.entries.map((e) => e.version).filter((v) => /^6\.(1|12)\.\d+-/.test(v)),
);

const kernels = new Set<string>();
while (kernels.size < KERNELS) {
  const r = rand();
  if (r < 0.25 && debianVersions.length > 0) {
    const v = pick(debianVersions);
    const abi = v.startsWith('6.12') ? `${v.split('-')[0]}+deb12-amd64` : '6.1.0-NN-amd64';
    kernels.add(
      `Linux version ${abi} (debian-kernel@lists.debian.org) #1 SMP PREEMPT_DYNAMIC Debian ${v} (2026-01-01)`,
    );
  } else {
    const b = pick(BRANCHES);
    const sub = 1 + Math.floor(rand() * (maxSub.get(b) ?? 100));
    if (r < 0.4 && b === '5.15')
      kernels.add(`5.15.0-${sub}-generic\nUbuntu 5.15.0-${sub}.${sub + 10}-generic 5.15.${sub}`);
    else kernels.add(`${b}.${sub}`);
  }
}
const kernelList = [...kernels];

// Fleets are skewed: a few kernels run on most hosts.
const hosts: { kernel: string; applied: string[] }[] = [];
const patchSets = new Map<string, string[]>();
for (let i = 0; i < HOSTS; i++) {
  const k = kernelList[Math.floor(Math.pow(rand(), 2) * kernelList.length)] as string;
  hosts.push({ kernel: k, applied: rand() < 0.5 ? (patchSets.get(k) ?? []) : [] });
  if (!patchSets.has(k)) patchSets.set(k, []);
}

const t1 = performance.now();
let exposed = 0;
let critical = 0;
const seen = new Set<string>();
for (const h of hosts) {
  const r = affected(db, h.kernel);
  if (!seen.has(h.kernel)) {
    seen.add(h.kernel);
    // The kernel's cumulative live patch fixes its 20 most severe CVEs.
    patchSets.get(h.kernel)?.push(...r.affected.slice(0, 20).map((f) => f.id));
  }
  const s = exposureSummary(db, h.kernel, h.applied);
  exposed += s.counts.total;
  critical += s.counts.critical;
}
const evalMs = performance.now() - t1;

console.log(
  JSON.stringify({
    hosts: HOSTS,
    distinctKernels: kernelList.length,
    cves: db.entries.size,
    loadMs: Math.round(loadMs),
    evalMs: Math.round(evalMs),
    hostsPerSec: Math.round(HOSTS / (evalMs / 1000)),
    rssMb: Math.round(process.memoryUsage().rss / 1024 / 1024),
    meanExposedCves: Math.round(exposed / HOSTS),
    meanCritical: Math.round(critical / HOSTS),
  }),
);
