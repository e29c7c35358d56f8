import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  LivegraftError,
  ValidationError,
  checkinResponseValidator,
  enrollResponseValidator,
  fixSpecValidator,
  manifestValidator,
  parseJson,
  parseModinfo,
  targetCustomValidator,
  type PatchManifest,
} from '@livegraft/protocol';
import { ServerClient } from '../src/delivery/client.ts';
import { JournalStore } from '../src/state/journal.ts';
import { StateStore } from '../src/state/state.ts';
import { parseRoot, tufError } from '../src/delivery/tuf-client.ts';
import { verifyModule } from '../src/kernel/verify.ts';
import { TestHost } from './helpers/cli.ts';
import { FakeKernel } from './helpers/fake-kernel.ts';
import { makePatch } from './helpers/patches.ts';

/** Bounded so the suite stays fast; fast-check shrinks any failure to a small counterexample. */
const RUNS = 500;
const SLOW_RUNS = 100;

const root = mkdtempSync(join(tmpdir(), 'lg-fuzz-'));
after(() => rmSync(root, { recursive: true, force: true }));
const kernel = new FakeKernel(join(root, 'k'));
const identity = {
  id: kernel.id,
  release: kernel.release,
  version: '#1',
  machine: 'x86_64',
  procVersion: kernel.procVersion,
};
const goodPatch = makePatch(kernel, 3);

const validFix = {
  id: 'fix-1',
  title: 'a fix',
  cves: ['CVE-2024-1234'],
  functions: [{ name: 'cmdline_proc_show', object: 'vmlinux', replacement: 'lg_cmdline_proc_show' }],
};
const validCheckin = {
  kernelSupported: true,
  latest: { kernelId: kernel.id, level: 3, manifest: goodPatch.manifest },
  checkinIntervalSec: 600,
  desired: { level: 3, reason: 'feed', allowDowngrade: false },
};
const validEnroll = { hostId: 'h', token: 't', root: { signed: {}, signatures: [] } };

/** A JSON value: objects, arrays, strings (some long), numbers (some huge or negative), null, booleans. */
const jsonValue = fc.jsonValue({ maxDepth: 4 });

/** Replaces or deletes one field somewhere in `base` (a structured mutation of a valid document). */
function mutated(base: unknown): fc.Arbitrary<unknown> {
  const paths: (string | number)[][] = [];
  const walk = (v: unknown, p: (string | number)[]): void => {
    paths.push(p);
    if (Array.isArray(v)) v.forEach((x, i) => walk(x, [...p, i]));
    else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) walk(x, [...p, k]);
  };
  walk(base, []);
  return fc
    .record({
      path: fc.constantFrom(...paths),
      action: fc.constantFrom('set', 'delete', 'extra'),
      value: fc.oneof(
        jsonValue,
        fc.constantFrom(-1, 0, 2 ** 53, Number.MAX_VALUE, '', 'x'.repeat(10_000), '../../etc/passwd', '\u0000'),
      ),
    })
    .map(({ path, action, value }) => {
      const copy = JSON.parse(JSON.stringify(base)) as unknown;
      if (path.length === 0) return action === 'set' ? value : copy;
      let parent = copy as Record<string | number, unknown>;
      for (const k of path.slice(0, -1)) parent = parent[k] as Record<string | number, unknown>;
      const last = path.at(-1) as string | number;
      if (action === 'set') parent[last] = value;
      else if (action === 'delete') delete parent[last];
      else if (typeof parent === 'object' && parent !== null) (parent as Record<string, unknown>)['__extra'] = value;
      return copy;
    });
}

/** The property every parser must have: a typed value, or a LivegraftError; never a crash. */
function cleanly(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof LivegraftError, `not a LivegraftError: ${(err as Error)?.stack ?? String(err)}`);
  }
}

async function cleanlyAsync(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    assert.ok(err instanceof LivegraftError, `not a LivegraftError: ${(err as Error)?.stack ?? String(err)}`);
  }
}

describe('fuzz: protocol validators', () => {
  const cases = [
    ['manifest', manifestValidator, goodPatch.manifest],
    ['fix.json', fixSpecValidator, validFix],
    ['check-in answer', checkinResponseValidator, validCheckin],
    ['enrol answer', enrollResponseValidator, validEnroll],
    ['TUF target custom', targetCustomValidator, { livegraft: { manifest: goodPatch.manifest } }],
  ] as const;

  for (const [what, v, valid] of cases) {
    it(`${what}: the valid document passes, mutations and random values give a ValidationError or a valid value`, () => {
      assert.doesNotThrow(() => v.parse(valid));
      fc.assert(
        fc.property(fc.oneof(mutated(valid), jsonValue, fc.anything()), (value) => {
          try {
            v.parse(value);
            assert.equal(v.check(value), true);
          } catch (err) {
            assert.ok(err instanceof ValidationError, String(err));
            assert.ok(err.problems.length > 0);
            assert.equal(err.code, 'VALIDATION_FAILED');
          }
        }),
        { numRuns: RUNS },
      );
    });
  }

  it('parseJson on random text: ValidationError, never a SyntaxError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.json(), fc.string({ unit: 'binary' })), (text) => {
        cleanly(() => parseJson(manifestValidator, text, 'fuzzed manifest'));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('fuzz: the agent parsing what it is given', () => {
  const answer = fc.record({
    status: fc.constantFrom(200, 200, 200, 201, 400, 401, 404, 429, 500, 503),
    body: fc.oneof(
      mutated(validCheckin).map((v) => JSON.stringify(v)),
      mutated(validEnroll).map((v) => JSON.stringify(v)),
      jsonValue.map((v) => JSON.stringify(v)),
      fc.string(),
      fc.constant('{"code":"X","message":"y"}'),
    ),
  });
  const client = (status: number, body: string): ServerClient =>
    new ServerClient({
      server: 'http://127.0.0.1:1',
      token: 't',
      fetch: () => Promise.resolve(new Response(status === 204 ? null : body, { status })),
    });

  it('check-in answers: a valid typed answer or a LivegraftError', async () => {
    await fc.assert(
      fc.asyncProperty(answer, async ({ status, body }) => {
        await cleanlyAsync(async () => {
          const res = await client(status, body).checkin({
            kernel: identity,
            appliedLevel: 0,
            state: 'unpatched',
            agentVersion: '0',
            uptimeSec: 1,
          });
          assert.equal(checkinResponseValidator.check(res), true);
        });
      }),
      { numRuns: RUNS },
    );
  });

  it('enrol answers: a valid typed answer or a LivegraftError', async () => {
    await fc.assert(
      fc.asyncProperty(answer, async ({ status, body }) => {
        await cleanlyAsync(() =>
          client(status, body).enroll({
            registrationKey: 'k'.repeat(8),
            hostname: 'h',
            kernel: identity,
            agentVersion: '0',
          }),
        );
      }),
      { numRuns: RUNS },
    );
  });

  it('state.json and journal.json with random content: read never throws', () => {
    const dir = join(root, 'state');
    mkdirSync(dir, { recursive: true });
    const state = new StateStore(dir);
    const journal = new JournalStore(dir);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          jsonValue.map((v) => JSON.stringify(v)),
        ),
        (text) => {
          writeFileSync(state.path, text);
          writeFileSync(journal.path, text);
          const s = state.read();
          assert.equal(s.state.schema, 1);
          journal.read();
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('TUF roots from random bytes are refused with TUF_ROOT_INVALID', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          jsonValue.map((v) => JSON.stringify(v)),
        ),
        (text) => {
          assert.throws(() => parseRoot(text, 'fuzzed root'), { code: 'TUF_ROOT_INVALID' });
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('whatever tuf-js throws becomes a LivegraftError with a stable code', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.anything(),
          fc.string().map((m) => new Error(m)),
        ),
        (thrown) => {
          const e = tufError(thrown);
          assert.ok(e instanceof LivegraftError);
          assert.match(e.code, /^[A-Z_]+$/);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('module bytes: mutated or random ELF is refused cleanly', () => {
    const flips = fc.array(fc.record({ at: fc.nat({ max: goodPatch.bytes.length - 1 }), v: fc.nat({ max: 255 }) }), {
      minLength: 1,
      maxLength: 8,
    });
    fc.assert(
      fc.property(
        fc.oneof(
          flips.map((f) => ({ f })),
          fc.uint8Array({ maxLength: 4096 }).map((b) => ({ b })),
        ),
        (c) => {
          const bytes =
            'b' in c
              ? c.b
              : (() => {
                  const x = Buffer.from(goodPatch.bytes);
                  for (const { at, v } of c.f) x[at] = v;
                  return x;
                })();
          cleanly(() => parseModinfo(bytes));
          // The manifest describes these exact bytes, so only the content checks can refuse them.
          const m: PatchManifest = JSON.parse(JSON.stringify(goodPatch.manifest)) as PatchManifest;
          cleanly(() => verifyModule(m, bytes, identity));
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('apply <manifest> with mutated manifests: exit 4 with a code, nothing loaded unless valid', async () => {
    const host = new TestHost();
    try {
      const dir = join(host.root, 'm');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, goodPatch.manifest.module.file), goodPatch.bytes);
      await fc.assert(
        fc.asyncProperty(mutated(goodPatch.manifest), async (m) => {
          const path = join(dir, 'manifest.json');
          writeFileSync(path, JSON.stringify(m));
          const r = await host.cli(['apply', path, '--json']);
          if (r.code === 0) return; // a mutation that kept it valid (an extra no-op, a same value)
          assert.equal(r.code, 4, r.stderr);
          assert.match(r.stderr, /^error \[[A-Z_]+\]: /m);
          assert.doesNotMatch(r.stderr, /\[INTERNAL\]/);
        }),
        { numRuns: SLOW_RUNS },
      );
      // Only the genuine module was ever loaded.
      for (const p of host.kernel.loads()) assert.match(p, new RegExp(`${goodPatch.manifest.name}\\.ko$`));
    } finally {
      host.cleanup();
    }
  });
});
