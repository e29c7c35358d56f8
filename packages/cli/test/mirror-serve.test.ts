// Property-based: whatever request path reaches `livegraft mirror --serve`, it
// answers 200, 400 or 404, serves nothing outside <dir>/tuf, and keeps serving.
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { serveMirror } from '../src/mirror.ts';
import { tempDir } from './helpers.ts';

const RUNS = 300;
const SECRET = 'outside-the-tuf-tree';

/** One raw HTTP/1.1 request (the path is sent exactly as given); resolves to the status code. */
function rawGet(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('error', reject);
    // A mirror that died or hung on the request never answers; the wait is bounded.
    sock.setTimeout(10_000, () => {
      sock.destroy();
      reject(new Error(`no answer to GET ${path}`));
    });
    sock.on('end', () => {
      const text = Buffer.concat(chunks).toString('latin1');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 'NaN');
      resolve({ status, body: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    sock.write(`GET ${path} HTTP/1.1\r\nHost: mirror\r\nConnection: close\r\n\r\n`, 'latin1');
  });
}

/** Path pieces an attacker would try: broken and overlong escapes, traversal, NULs, odd bytes. */
const piece = fc.oneof(
  fc.constantFrom(
    '%',
    '%E0%A4%A',
    '%E0%A4',
    '%C0%AF',
    '%FF',
    '%00',
    '%2e%2e',
    '..',
    '%2f',
    '/',
    '\\',
    '%5c',
    'tuf',
    'metadata',
    'targets',
    '1.root.json',
    'timestamp.json',
    'secret.json',
    '?',
    '#',
    ';',
    '%%',
    '%zz',
  ),
  fc.stringMatching(/^[A-Za-z0-9._~%-]{0,12}$/),
  fc.integer({ min: 0, max: 255 }).map((b) => `%${b.toString(16).padStart(2, '0')}`),
);
const requestPath = fc
  .tuple(fc.constantFrom('/', '/tuf/', '/tuf/metadata/'), fc.array(piece, { maxLength: 12 }))
  .map(([prefix, parts]) => prefix + parts.join(''));

describe('mirror --serve against any request path', () => {
  let server: Server;
  let port: number;

  before(async () => {
    const dir = await tempDir('lg-mirror-serve-');
    await mkdir(join(dir, 'tuf', 'metadata'), { recursive: true });
    await writeFile(join(dir, 'tuf', 'metadata', '1.root.json'), '{"signed":{}}');
    await writeFile(join(dir, 'secret.json'), SECRET);
    server = serveMirror(dir);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('answers a malformed percent-encoding with 400 and keeps serving', async () => {
    assert.equal((await rawGet(port, '/tuf/%E0%A4%A')).status, 400);
    assert.equal((await rawGet(port, '/tuf/metadata/%')).status, 400);
    const ok = await rawGet(port, '/tuf/metadata/1.root.json');
    assert.equal(ok.status, 200);
    assert.equal(ok.body, '{"signed":{}}');
  });

  it('never crashes, never answers 5xx, never serves a file outside tuf/', async () => {
    await fc.assert(
      fc.asyncProperty(requestPath, async (path) => {
        const { status, body } = await rawGet(port, path);
        assert.ok([200, 400, 404].includes(status), `${path} -> ${status}`);
        assert.ok(!body.includes(SECRET), `${path} served a file outside tuf/`);
      }),
      { numRuns: RUNS },
    );
    assert.equal((await rawGet(port, '/tuf/metadata/1.root.json')).status, 200);
  });
});
