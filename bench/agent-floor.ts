// bench/agent-floor: the CPU cost of the operations every real agent update
// is made of, measured one by one on this machine, so the fleet bench's
// per-host agent cost can be compared with what it cannot go below.
//
//   npm run bench -- agent-floor [--n 2000]
//
// - verify: one ed25519 signature check of a 1 KiB document, key object made
//   from its SPKI bytes each time (as a TUF client checks each role);
// - fetch: one keep-alive HTTP GET of a 1 KiB JSON body with the global
//   fetch, client CPU only (the server is a separate process);
// - httpGet: the same GET with node:http and a keep-alive agent, for
//   comparison: what the fetch layer costs above the HTTP exchange itself;
// - durableWrite: a small file written the way the agent commits state
//   (temp file, fsync, rename, fsync of the directory), on tmpfs.
// Prints one JSON document with microseconds of CPU per operation.
import { spawn } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';
import http from 'node:http';
import { closeSync, fsyncSync, mkdtempSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { n: { type: 'string', default: '2000' } } });
const N = Number(args.n);
if (!Number.isInteger(N) || N < 10 || N > 1_000_000) throw new Error('--n must be an integer in 10..1000000');
/** The HTTP server child must answer within this. */
const SERVER_START_TIMEOUT_MS = 10_000;

/** CPU microseconds (user + system) this process spends in `fn`, per call. */
async function cpuPerCall(fn: (i: number) => unknown): Promise<number> {
  for (let i = 0; i < Math.min(200, N); i++) await fn(i); // warm-up
  const before = process.cpuUsage();
  for (let i = 0; i < N; i++) await fn(i);
  const used = process.cpuUsage(before);
  return Number(((used.user + used.system) / N).toFixed(1));
}

function verifyCost(): Promise<number> {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const spki = publicKey.export({ format: 'der', type: 'spki' });
  const doc = Buffer.alloc(1024, 'x');
  const sig = sign(null, doc, privateKey);
  return cpuPerCall(() => {
    if (!verify(null, doc, createPublicKey({ key: spki, format: 'der', type: 'spki' }), sig)) {
      throw new Error('verify failed');
    }
  });
}

const SERVER = `
const http = require('node:http');
const body = JSON.stringify({ pad: 'x'.repeat(1000) });
const s = http.createServer((req, res) => { res.setHeader('content-type', 'application/json'); res.end(body); });
s.listen(0, '127.0.0.1', () => process.stdout.write(String(s.address().port) + '\\n'));
`;

/** One keep-alive GET with node:http; resolves once the body is parsed. */
function httpGet(url: string, agent: http.Agent): Promise<unknown> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
        res.on('error', reject);
      })
      .on('error', reject);
  });
}

/** Client CPU per GET, with the global fetch and with node:http, against one server child. */
async function httpCosts(): Promise<{ fetch: number; httpGet: number }> {
  const child = spawn(process.execPath, ['-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('the HTTP server did not start')), SERVER_START_TIMEOUT_MS);
      child.stdout?.once('data', (d: Buffer) => {
        clearTimeout(timer);
        resolve(Number(d.toString().trim()));
      });
    });
    const url = `http://127.0.0.1:${port}/x.json`;
    const viaFetch = await cpuPerCall(async () => {
      const res = await fetch(url);
      await res.json();
    });
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      return { fetch: viaFetch, httpGet: await cpuPerCall(() => httpGet(url, agent)) };
    } finally {
      agent.destroy();
    }
  } finally {
    child.kill();
  }
}

async function durableWriteCost(): Promise<number> {
  const dir = mkdtempSync(join(os.platform() === 'linux' ? '/dev/shm' : tmpdir(), 'livegraft-floor-'));
  const text = JSON.stringify({ level: 1, state: 'patched', at: new Date().toISOString() });
  try {
    return await cpuPerCall((i) => {
      const path = join(dir, `f${i % 16}.json`);
      const tmp = `${path}.tmp`;
      const fd = openSync(tmp, 'w', 0o600);
      writeSync(fd, text);
      fsyncSync(fd);
      closeSync(fd);
      renameSync(tmp, path);
      const d = openSync(dir, 'r');
      fsyncSync(d);
      closeSync(d);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const result = {
  bench: 'agent-floor',
  at: new Date().toISOString(),
  machine: { cpus: os.cpus().length, node: process.version },
  n: N,
  cpuMicrosecondsPerOp: {
    verify: await verifyCost(),
    ...(await httpCosts()),
    durableWrite: await durableWriteCost(),
  },
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
