// bench/fleet-load: a closed-loop HTTP load generator for bench/fleet.ts.
// `concurrency` keep-alive connections each send one request after another
// for `durationMs` (after `warmupMs` not counted); prints one JSON line.
//
//   node --import tsx bench/fleet-load.ts <spec.json>
// spec: { url, method, path, bodies?: string[], tokens?: string[], concurrency, durationMs, warmupMs }
import { readFileSync } from 'node:fs';
import http from 'node:http';

interface Spec {
  url: string;
  method: 'GET' | 'POST';
  path: string;
  /** One body per token (same index); none for GET. */
  bodies?: string[];
  tokens?: string[];
  concurrency: number;
  durationMs: number;
  warmupMs: number;
}

/** Never more than this many requests in one run, whatever the duration. */
const MAX_REQUESTS = 5_000_000;

const spec = JSON.parse(readFileSync(process.argv[2] ?? '', 'utf8')) as Spec;
const target = new URL(spec.url);
const agent = new http.Agent({ keepAlive: true, maxSockets: spec.concurrency, maxFreeSockets: spec.concurrency });
const latencies: number[] = [];
const statuses: Record<string, number> = {};
let sent = 0;

/** One request; resolves with whether it succeeded (2xx). */
function once(i: number): Promise<boolean> {
  const n = spec.tokens?.length ?? 0;
  const k = n > 0 ? i % n : 0;
  const body = spec.bodies?.[k];
  const headers: Record<string, string> = {};
  if (body !== undefined) {
    headers['content-type'] = 'application/json';
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const token = spec.tokens?.[k];
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  return new Promise((resolve) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: spec.path, method: spec.method, headers, agent },
      (res) => {
        res.resume();
        res.on('end', () => {
          statuses[String(res.statusCode)] = (statuses[String(res.statusCode)] ?? 0) + 1;
          resolve(res.statusCode !== undefined && res.statusCode < 300);
        });
      },
    );
    req.on('error', () => {
      statuses['error'] = (statuses['error'] ?? 0) + 1;
      resolve(false);
    });
    req.end(body);
  });
}

const start = Date.now();
const measureFrom = start + spec.warmupMs;
const end = measureFrom + spec.durationMs;
let measuredOk = 0;
let measuredFailed = 0;
await Promise.all(
  Array.from({ length: spec.concurrency }, async () => {
    while (Date.now() < end && sent < MAX_REQUESTS) {
      const i = sent++;
      const t = performance.now();
      const good = await once(i);
      // Counted when it completes inside the measured window.
      const now = Date.now();
      if (now >= measureFrom && now <= end) {
        latencies.push(performance.now() - t);
        if (good) measuredOk++;
        else measuredFailed++;
      }
    }
  }),
);
agent.destroy();
latencies.sort((a, b) => a - b);
const q = (p: number): number =>
  Number((latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? 0).toFixed(2));
process.stdout.write(
  `${JSON.stringify({
    requests: measuredOk + measuredFailed,
    ok: measuredOk,
    failed: measuredFailed,
    perSec: Math.round(measuredOk / (spec.durationMs / 1000)),
    latencyMs: { p50: q(0.5), p99: q(0.99), max: q(1) },
    statuses,
  })}\n`,
);
