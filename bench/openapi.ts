// bench/openapi: what GET /openapi.json costs on a fresh server over loopback
// HTTP. The first answer builds the document from the routes; later ones
// reuse it. Prints JSON.
//
//   npm run bench -- openapi [--runs N]
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { parseConfig, startServer } from '../packages/server/src/index.ts';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '200' } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1 || runs > 100_000) throw new Error('--runs takes 1 to 100000');

const dir = await mkdtemp(join(tmpdir(), 'livegraft-bench-openapi-'));
const server = await startServer(parseConfig({ dataDir: dir, host: '127.0.0.1', port: 0, logLevel: 'silent' }), {
  logger: pino({ level: 'silent' }),
});
try {
  const get = async (): Promise<{ ms: number; bytes: number; wireBytes: number; body: string }> => {
    const t = performance.now();
    const res = await fetch(`${server.url}/openapi.json`);
    const body = Buffer.from(await res.arrayBuffer());
    const ms = performance.now() - t;
    if (res.status !== 200) throw new Error(`GET /openapi.json answered ${res.status}`);
    // fetch asks for gzip and unpacks it; content-length is what crossed the wire.
    return { ms, bytes: body.length, wireBytes: Number(res.headers.get('content-length')), body: body.toString() };
  };
  const first = await get();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await get()).ms);
  times.sort((a, b) => a - b);
  const doc = JSON.parse(first.body) as { paths: Record<string, Record<string, unknown>> };
  const operations = Object.values(doc.paths).reduce((n, item) => n + Object.keys(item).length, 0);
  const round = (x: number): number => Math.round(x * 100) / 100;
  console.log(
    JSON.stringify(
      {
        operations,
        bytes: first.bytes,
        wireBytes: first.wireBytes,
        firstMs: round(first.ms),
        runs,
        medianMs: round(times[Math.floor(times.length / 2)] ?? 0),
        p95Ms: round(times[Math.floor(times.length * 0.95)] ?? 0),
      },
      null,
      2,
    ),
  );
} finally {
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
