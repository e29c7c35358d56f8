import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_DELIVERY_LIMITS, GuardedFetcher } from '../src/delivery/tuf-fetcher.ts';

/**
 * A server that closes a connection without answering (what a kept-alive
 * connection the server timed out looks like to the client) is asked once more;
 * a second close is an error with a stable code. Seen on Debian 12's Node 18
 * through a slow proxy; the retry holds on every Node.
 */
describe('the TUF fetcher and connections closed before an answer', () => {
  let server: Server;
  let url: string;
  let dir: string;
  let drops = 0;
  let requests = 0;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'lg-retry-'));
    server = createServer((req, res) => {
      requests++;
      if (drops > 0) {
        drops--;
        req.socket.destroy();
        return;
      }
      res.end('{"ok":true}');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/tuf/metadata/timestamp.json`;
  });
  after(async () => {
    await new Promise<void>((r) => server.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });

  const fetcher = () => new GuardedFetcher({ limits: DEFAULT_DELIVERY_LIMITS, stagingDir: join(dir, 'staging') });

  it('sends the GET once more on a new connection', async () => {
    drops = 1;
    requests = 0;
    const text = await fetcher().downloadFile(url, 1024, async (file) => readFileSync(file, 'utf8'));
    assert.equal(text, '{"ok":true}');
    assert.equal(requests, 2);
  });

  it('gives up after the second close with SERVER_UNREACHABLE', async () => {
    drops = 2;
    requests = 0;
    const f = fetcher();
    await assert.rejects(f.downloadFile(url, 1024, async () => undefined));
    assert.equal(requests, 2);
    assert.equal(f.lastFailure?.code, 'SERVER_UNREACHABLE');
  });
});
