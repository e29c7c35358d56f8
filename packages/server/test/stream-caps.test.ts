// One token or one host cannot hold every event stream: past its own cap a new
// stream is refused with 429 STREAM_LIMIT, and everyone else still gets theirs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { API_PREFIX } from '@livegraft/protocol';
import { MAX_ACTIVITY_STREAMS_PER_TOKEN } from '../src/dashboard/activity.ts';
import { MAX_PUSH_STREAMS_PER_HOST } from '../src/routes/events.ts';
import { kernelIdentity, startHarness, type Harness } from './helpers.ts';

interface Stream {
  status: number;
  body: unknown;
  close(): void;
}

describe('event stream caps', () => {
  let h: Harness;
  const open: Stream[] = [];

  async function stream(path: string, token: string): Promise<Stream> {
    const abort = new AbortController();
    const res = await fetch(`${h.server.url}${API_PREFIX}${path}`, {
      headers: { authorization: `Bearer ${token}` },
      signal: abort.signal,
    });
    const s: Stream = {
      status: res.status,
      body: res.status === 200 ? undefined : await res.json(),
      close: () => abort.abort(),
    };
    if (res.status === 200) open.push(s);
    return s;
  }

  async function enrol(name: string): Promise<string> {
    const res = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: { registrationKey: h.registrationKey, hostname: name, kernel: kernelIdentity(), agentVersion: '0.1.0' },
    });
    assert.equal(res.status, 201);
    return (res.json as { token: string }).token;
  }

  before(async () => {
    h = await startHarness();
  });
  after(async () => {
    for (const s of open) s.close();
    await h.stop();
  });

  it('caps activity streams per API token with a clear 429', async () => {
    const viewer = (await h.call('POST', '/tokens', { json: { name: 'wall', role: 'viewer' } })).json as {
      token: string;
    };
    for (let i = 0; i < MAX_ACTIVITY_STREAMS_PER_TOKEN; i++) {
      assert.equal((await stream('/activity/stream', viewer.token)).status, 200);
    }
    const refused = await stream('/activity/stream', viewer.token);
    assert.equal(refused.status, 429);
    assert.equal((refused.body as { code: string }).code, 'STREAM_LIMIT');
    assert.match((refused.body as { message: string }).message, /token "wall" already has 10 activity streams open/);
    assert.equal((await stream('/activity/stream', h.adminToken)).status, 200, 'the admin still gets one');
  });

  it('caps push streams per host; other hosts are not affected', async () => {
    const flooding = await enrol('flood-1');
    for (let i = 0; i < MAX_PUSH_STREAMS_PER_HOST; i++) {
      assert.equal((await stream('/events/stream', flooding)).status, 200);
    }
    const refused = await stream('/events/stream', flooding);
    assert.equal(refused.status, 429);
    assert.equal((refused.body as { code: string }).code, 'STREAM_LIMIT');
    assert.equal((await stream('/events/stream', await enrol('web-2'))).status, 200);
  });
});
