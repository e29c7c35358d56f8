// Property-based: whatever JSON arrives at the API, the server answers with a
// clear 4xx error body ({code, message}) and never a 5xx or a crash.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { buildPatch, kernelIdentity, startHarness, type Harness } from './helpers.ts';

const RUNS = 150;

/** Valid bodies to mutate, so the fuzzer reaches past the first schema check. */
function seeds(h: Harness): Array<{ method: string; path: string; token: 'admin' | 'host' | 'none'; body: unknown }> {
  const { manifest } = buildPatch();
  const kernel = kernelIdentity();
  return [
    {
      method: 'POST',
      path: '/hosts/enroll',
      token: 'none',
      body: { registrationKey: h.registrationKey, hostname: 'fuzz', kernel, agentVersion: '0.1.0' },
    },
    {
      method: 'POST',
      path: '/hosts/checkin',
      token: 'host',
      body: { kernel, appliedLevel: 0, state: 'unpatched', agentVersion: '0.1.0', uptimeSec: 1 },
    },
    { method: 'POST', path: '/patches', token: 'admin', body: { manifest, publish: true } },
    { method: 'POST', path: '/rollback', token: 'admin', body: { feed: 'production', kernelId: kernel.id, level: 0 } },
    { method: 'POST', path: '/feeds', token: 'admin', body: { name: 'ring1', promotesTo: 'production' } },
    { method: 'POST', path: '/tokens', token: 'admin', body: { name: 'fuzz', role: 'viewer' } },
    { method: 'POST', path: '/hosts/tripwire', token: 'host', body: { events: [] } },
  ];
}

/** Replaces, drops or retypes one field somewhere in a JSON value. */
function mutate(value: unknown, path: number[], replacement: unknown): unknown {
  if (path.length === 0 || value === null || typeof value !== 'object') return replacement;
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
  if (entries.length === 0) return replacement;
  const [head = 0, ...rest] = path;
  const [key, child] = entries[head % entries.length] ?? ['', undefined];
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? [...value] : { ...value };
  if (replacement === undefined && rest.length === 0 && !Array.isArray(copy)) {
    delete copy[key];
    return copy;
  }
  (copy as Record<string, unknown>)[key] = mutate(child, rest, replacement);
  return copy;
}

describe('API bodies under fuzzing', () => {
  let h: Harness;
  let hostToken = '';

  before(async () => {
    h = await startHarness();
    const en = await h.call('POST', '/hosts/enroll', {
      token: null,
      json: {
        registrationKey: h.registrationKey,
        hostname: 'fuzz-host',
        kernel: kernelIdentity(),
        agentVersion: '0.1.0',
      },
    });
    hostToken = (en.json as { token: string }).token;
  });
  after(async () => {
    await h.stop();
  });

  it('answers every mutated or random body with a 4xx error naming a code, never a 5xx', async () => {
    const targets = seeds(h);
    await fc.assert(
      fc.asyncProperty(
        fc.nat({ max: targets.length - 1 }),
        fc.oneof(
          fc.jsonValue(),
          fc.tuple(fc.array(fc.nat({ max: 20 }), { maxLength: 4 }), fc.oneof(fc.jsonValue(), fc.constant(undefined))),
        ),
        async (i, fuzz) => {
          const t = targets[i];
          if (t === undefined) return;
          const body =
            Array.isArray(fuzz) && fuzz.length === 2 && Array.isArray(fuzz[0])
              ? mutate(t.body, fuzz[0] as number[], fuzz[1])
              : fuzz;
          const token = t.token === 'admin' ? h.adminToken : t.token === 'host' ? hostToken : null;
          const r = await h.call(t.method, t.path, { token, json: body === undefined ? null : body });
          assert.ok(r.status < 500, `${t.method} ${t.path} answered ${r.status} to ${JSON.stringify(body)}`);
          if (r.status >= 400) {
            const e = r.json as { code?: unknown; message?: unknown };
            assert.equal(typeof e.code, 'string', `no error code for ${JSON.stringify(body)}`);
            assert.equal(typeof e.message, 'string');
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('answers bodies that are not JSON at all with a 400', async () => {
    for (const raw of ['{', '[1,', 'null', '"x"', '\u0000\u0001', '{"a":1}{"b":2}']) {
      const r = await h.call('POST', '/patches', { body: Buffer.from(raw), contentType: 'application/json' });
      assert.ok(r.status >= 400 && r.status < 500, `${JSON.stringify(raw)} -> ${r.status}`);
    }
  });
});
