// A check-in that timed out or lost its connection is sent once more; any
// other failure, a second loss, and every other request are not repeated.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { LivegraftError, type CheckinRequest } from '@livegraft/protocol';
import { ServerClient, type FetchFn } from '../src/delivery/client.ts';

const ANSWER = { kernelSupported: true, latest: null, checkinIntervalSec: 600 };
const REPORT = {
  kernel: { id: 'a'.repeat(64), release: '6.1.0-57-amd64', version: '#1', machine: 'x86_64', procVersion: 'x' },
  appliedLevel: 0,
  state: 'unpatched',
  agentVersion: '1',
  uptimeSec: 10,
} as CheckinRequest;

function timeout(): Error {
  const e = new Error('The operation was aborted due to timeout');
  e.name = 'TimeoutError';
  return e;
}
function refused(): Error {
  return new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } });
}
const ok = (): Response =>
  new Response(JSON.stringify(ANSWER), { status: 200, headers: { 'content-type': 'application/json' } });

/** A fetch that plays the given outcomes in order, counting calls. */
function scripted(...outcomes: (() => Response | Error)[]): { fetch: FetchFn; calls: () => number } {
  let n = 0;
  const fetch: FetchFn = async () => {
    const next = outcomes[Math.min(n, outcomes.length - 1)];
    n++;
    const r = next?.();
    if (r instanceof Error) throw r;
    if (r === undefined) throw new Error('no outcome');
    return r;
  };
  return { fetch, calls: () => n };
}

const client = (fetch: FetchFn): ServerClient =>
  new ServerClient({ server: 'http://127.0.0.1:9', token: 't', fetch, checkinRetryPauseMs: 1 });

async function code(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'none';
  } catch (err) {
    return err instanceof LivegraftError ? err.code : String(err);
  }
}

describe('check-in retry', () => {
  it('sends a check-in again after a timeout, and after a lost connection', async () => {
    for (const first of [timeout, refused]) {
      const f = scripted(first, ok);
      assert.deepEqual(await client(f.fetch).checkin(REPORT), ANSWER);
      assert.equal(f.calls(), 2);
    }
  });

  it('gives up after the second loss, with the second error', async () => {
    const f = scripted(timeout, refused);
    assert.equal(await code(client(f.fetch).checkin(REPORT)), 'SERVER_UNREACHABLE');
    assert.equal(f.calls(), 2);
  });

  it('does not repeat a check-in the server answered, even with an error', async () => {
    const f = scripted(
      () => new Response(JSON.stringify({ code: 'AUTH_INVALID', message: 'revoked' }), { status: 401 }),
      ok,
    );
    assert.notEqual(await code(client(f.fetch).checkin(REPORT)), 'none');
    assert.equal(f.calls(), 1);
  });

  it('never repeats an enrolment (it would enrol the host twice)', async () => {
    const f = scripted(timeout, ok);
    const c = new ServerClient({ server: 'http://127.0.0.1:9', fetch: f.fetch, checkinRetryPauseMs: 1 });
    const enrol = c.enroll({
      registrationKey: 'k',
      hostname: 'h',
      kernel: REPORT.kernel,
      agentVersion: '1',
    });
    assert.equal(await code(enrol), 'SERVER_TIMEOUT');
    assert.equal(f.calls(), 1);
  });
});
