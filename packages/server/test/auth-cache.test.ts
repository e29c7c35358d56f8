import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyRequest } from 'fastify';
import { createAuthenticator, hashToken, HOST_TOKEN_CACHE_MS } from '../src/auth.ts';
import type { HostRepository } from '../src/db/hosts.ts';
import type { ApiTokenRepository } from '../src/db/tokens.ts';

/** A host table of one live host, counting the lookups that reach it. */
function hostTable(): { repo: HostRepository; lookups: () => number; revoke: () => void } {
  let live = true;
  let n = 0;
  const repo = {
    findByTokenHash: (hash: string) => {
      n++;
      return Promise.resolve(live && hash === hashToken('host-secret') ? { id: 'h1', tokenHash: hash } : undefined);
    },
  } as unknown as HostRepository;
  return { repo, lookups: () => n, revoke: () => (live = false) };
}

const noApiTokens = { findLiveByHash: () => Promise.resolve(undefined) } as unknown as ApiTokenRepository;
const request = (token: string): FastifyRequest =>
  ({ method: 'POST', headers: { authorization: `Bearer ${token}` } }) as unknown as FastifyRequest;

describe('host token lookups', () => {
  it('are reused until they age out, and a revocation forgets them at once', async () => {
    let now = 1_000_000;
    const t = hostTable();
    const auth = createAuthenticator('admin-secret', t.repo, noApiTokens, undefined, () => now);
    assert.deepEqual(await auth.require(request('host-secret'), 'host'), { kind: 'host', hostId: 'h1' });
    await auth.require(request('host-secret'), 'host');
    assert.equal(t.lookups(), 1, 'the second request is answered from memory');

    now += HOST_TOKEN_CACHE_MS;
    await auth.require(request('host-secret'), 'host');
    assert.equal(t.lookups(), 2, 'an aged entry is looked up again');

    t.revoke();
    auth.forgetHosts(['h1']);
    await assert.rejects(auth.require(request('host-secret'), 'host'), { code: 'AUTH_INVALID' });
    assert.equal(t.lookups(), 3);
  });

  it('never remember a failed lookup', async () => {
    const t = hostTable();
    const auth = createAuthenticator('admin-secret', t.repo, noApiTokens, undefined, () => 0);
    await assert.rejects(auth.require(request('wrong'), 'host'), { code: 'AUTH_INVALID' });
    await assert.rejects(auth.require(request('wrong'), 'host'), { code: 'AUTH_INVALID' });
    assert.equal(t.lookups(), 2);
  });
});
