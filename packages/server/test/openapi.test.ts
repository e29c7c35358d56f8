import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import type { TSchema } from 'typebox';
import { validator } from '@livegraft/protocol';
import { STATUS_OF_CODE } from '../src/errors.ts';
import { OPERATIONS, TAGS } from '../src/openapi/operations.ts';
import { startFleetHarness, type FleetHarness } from './fleet-helpers.ts';
import { buildPatch, KERNEL_ID } from './helpers.ts';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const REDOCLY = join(ROOT, 'node_modules', '.bin', 'redocly');
const REDOCLY_TIMEOUT_MS = 120_000;

type Requirement = Record<string, string[]>;
interface Operation {
  operationId?: string;
  summary?: string;
  tags?: string[];
  security?: Requirement[];
  parameters?: { name: string; in: string }[];
  responses: Record<string, { description: string; content?: Record<string, { schema?: unknown }> }>;
  'x-livegraft-role'?: string;
}
interface Doc {
  openapi: string;
  tags: { name: string }[];
  paths: Record<string, Record<string, Operation>>;
}
interface Op {
  key: string;
  method: string;
  path: string;
  op: Operation;
}

const METHODS = new Set(['get', 'put', 'post', 'delete', 'patch']);

function operations(doc: Doc): Op[] {
  const out: Op[] = [];
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      if (!METHODS.has(method)) continue;
      out.push({ key: `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ':$1')}`, method, path, op });
    }
  }
  return out;
}

const has = (sec: Requirement[] | undefined, want: string[]): boolean =>
  (sec ?? []).some((r) => Object.keys(r).sort().join(',') === [...want].sort().join(','));

/** The lint's JSON report, whatever its exit code (1 when it finds errors). */
function redoclyLint(file: string): Promise<{ totals: { errors: number; warnings: number }; problems: unknown[] }> {
  return new Promise((resolve, reject) => {
    execFile(
      REDOCLY,
      ['lint', file, '--config', join(ROOT, 'redocly.yaml'), '--format', 'json', '--max-problems', '1000'],
      {
        cwd: ROOT,
        timeout: REDOCLY_TIMEOUT_MS,
        maxBuffer: 16 * 1024 * 1024,
        // Offline and quiet: no usage report, no update check.
        env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_NOTIFICATIONS: 'true', NO_COLOR: '1' },
      },
      (err, stdout, stderr) => {
        try {
          resolve(JSON.parse(stdout) as { totals: { errors: number; warnings: number }; problems: unknown[] });
        } catch {
          reject(new Error(`redocly lint gave no JSON report (${String(err)}): ${stderr}`));
        }
      },
    );
  });
}

describe('the OpenAPI document', () => {
  let h: FleetHarness;
  let doc: Doc;
  let ops: Op[];
  let hostToken: string;
  let hostId: string;

  before(async () => {
    h = await startFleetHarness();
    const res = await fetch(`${h.server.url}/openapi.json`);
    assert.equal(res.status, 200);
    doc = (await res.json()) as Doc;
    ops = operations(doc);
    const host = await h.enroll('documented');
    hostToken = host.token;
    hostId = host.hostId;
    await h.publish(1);
  });
  after(async () => {
    await h.stop();
  });

  test('every route has an entry in the operations table: a summary, an operationId and a defined tag', () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.ok(ops.length > 80, `${ops.length} operations`);
    const tags = new Set(doc.tags.map((t) => t.name));
    const ids = new Set<string>();
    for (const { key, op } of ops) {
      assert.ok(OPERATIONS[key] !== undefined, `${key} has no entry in packages/server/src/openapi/operations.ts`);
      assert.ok((op.summary ?? '').length > 0, `${key}: summary`);
      assert.ok(op.operationId !== undefined && !ids.has(op.operationId), `${key}: a unique operationId`);
      ids.add(op.operationId);
      assert.equal(op.tags?.length, 1, `${key}: one tag`);
      assert.ok(tags.has(op.tags[0] ?? '') && (op.tags[0] ?? '') in TAGS, `${key}: tag ${op.tags[0]} is defined`);
    }
  });

  test('is the same document gzipped (to clients that take it) and plain', async () => {
    const zipped = await fetch(`${h.server.url}/openapi.json`, { headers: { 'accept-encoding': 'gzip' } });
    assert.equal(zipped.headers.get('content-encoding'), 'gzip');
    assert.equal(zipped.headers.get('vary'), 'accept-encoding');
    const plain = await fetch(`${h.server.url}/openapi.json`, { headers: { 'accept-encoding': 'identity' } });
    assert.equal(plain.headers.get('content-encoding'), null);
    assert.match(plain.headers.get('content-type') ?? '', /^application\/json/);
    assert.deepEqual(await plain.json(), doc);
    assert.deepEqual(await zipped.json(), doc);
  });

  test('holds no framework-only paths, and every path parameter is declared', () => {
    for (const { key, path, op } of ops) {
      assert.doesNotMatch(path, /[*:]/, `${key} is no OpenAPI path`);
      for (const name of [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1])) {
        assert.ok(
          (op.parameters ?? []).some((p) => p.in === 'path' && p.name === name),
          `${key}: path parameter ${name}`,
        );
      }
    }
    assert.ok(!('/*' in doc.paths) && !('/{*}' in doc.paths));
  });

  test('every 2xx answer with a body has a schema; every 4xx answer is the shared error schema', () => {
    for (const { key, op } of ops) {
      const ok = Object.keys(op.responses).filter((s) => s.startsWith('2'));
      assert.ok(ok.length > 0, `${key}: a 2xx answer`);
      for (const status of ok) {
        const answer = op.responses[status];
        if (status === '204') {
          assert.equal(answer?.content, undefined, `${key}: 204 has no body`);
          continue;
        }
        const media = Object.entries(answer?.content ?? {});
        assert.ok(media.length > 0, `${key} ${status}: a media type`);
        for (const [type, m] of media) assert.ok(m.schema !== undefined, `${key} ${status} ${type}: a schema`);
      }
      for (const [status, answer] of Object.entries(op.responses).filter(([s]) => s.startsWith('4'))) {
        assert.deepEqual(answer.content, { 'application/json': { schema: { $ref: '#/components/schemas/ApiError' } } });
        for (const code of /code (.*)$/.exec(answer.description)?.[1]?.split(', ') ?? []) {
          assert.equal(STATUS_OF_CODE[code], Number(status), `${key}: ${code} answers ${status}`);
        }
      }
    }
  });

  test('real answers of the GET operations match their documented 200 schemas', async (t) => {
    const values: Record<string, string> = { id: hostId, kernelId: KERNEL_ID, level: '1', name: 'production' };
    let checked = 0;
    for (const { key, path, op } of ops.filter((o) => o.method === 'get')) {
      const schema = op.responses['200']?.content?.['application/json']?.schema;
      if (schema === undefined) continue;
      const url = path.replace(/\{([^}]+)\}/g, (_m, name: string) => values[name] ?? 'x');
      const res = await fetch(`${h.server.url}${url}`, { headers: { authorization: `Bearer ${h.adminToken}` } });
      // Parameters this test cannot fill (a fix id, a job id) answer 404: nothing to compare.
      if (res.status !== 200 || !(res.headers.get('content-type') ?? '').startsWith('application/json')) {
        await res.body?.cancel();
        continue;
      }
      const answer: unknown = await res.json();
      const check = validator(schema as TSchema, key);
      assert.deepEqual(check.problems(answer), [], `${key}: the answer does not match its schema`);
      checked++;
    }
    assert.ok(checked >= 30, `${checked} answers checked`);
    t.diagnostic(`${checked} GET answers checked`);
  });

  test('real answers of changes match their documented schemas', async () => {
    const matches = (path: string, method: string, status: number, answer: unknown): void => {
      const schema = doc.paths[path]?.[method]?.responses[String(status)]?.content?.['application/json']?.schema;
      assert.ok(schema !== undefined, `${method} ${path} documents a ${status} answer`);
      assert.deepEqual(validator(schema as TSchema, path).problems(answer), [], `${method} ${path} ${status}`);
    };
    const p = buildPatch({ level: 2 });
    const upload = await h.call('PUT', `/modules/${p.sha256}`, { body: p.bytes });
    matches('/api/v1/modules/{sha256}', 'put', upload.status, upload.json);
    const created = await h.call('POST', '/tokens', { json: { name: 'documented', role: 'viewer' } });
    matches('/api/v1/tokens', 'post', created.status, created.json);
    const revoked = await h.call('POST', `/tokens/${(created.json as { id: string }).id}/revoke`);
    matches('/api/v1/tokens/{id}/revoke', 'post', revoked.status, revoked.json);
    const unpinned = await h.call('DELETE', '/tags/documented/pin');
    matches('/api/v1/tags/{subject}/pin', 'delete', unpinned.status, unpinned.json);
    const halted = await h.call('POST', '/halts', { json: { kernelId: KERNEL_ID, level: 1 } });
    matches('/api/v1/halts', 'post', halted.status, halted.json);
  });

  test('the table names only error codes that errors.ts answers with a 4xx status', () => {
    for (const [key, entry] of Object.entries(OPERATIONS)) {
      for (const code of entry.errors ?? []) {
        const status = STATUS_OF_CODE[code] ?? 500;
        assert.ok(status >= 400 && status < 500, `${key}: ${code} is a ${status}`);
      }
    }
  });

  describe('security says how each route really authenticates', () => {
    const request = async (o: Op, headers: Record<string, string>): Promise<{ status: number; code?: string }> => {
      const path = o.path.replace(/\{[^}]+\}/g, 'x');
      const res = await fetch(`${h.server.url}${path}`, { method: o.method.toUpperCase(), headers });
      const type = res.headers.get('content-type') ?? '';
      // Event streams stay open: the status and headers are all this needs.
      if (type.startsWith('text/event-stream')) {
        await res.body?.cancel();
        return { status: res.status };
      }
      const text = await res.text();
      return {
        status: res.status,
        code: type.includes('json') ? (JSON.parse(text) as { code?: string }).code : undefined,
      };
    };

    test('operations with required credentials refuse a request without any (401)', async () => {
      for (const o of ops.filter((x) => (x.op.security ?? []).length > 0 && !has(x.op.security, []))) {
        const res = await request(o, {});
        assert.deepEqual(res, { status: 401, code: 'AUTH_REQUIRED' }, o.key);
      }
    });

    test('operations without required credentials answer a request without any', async () => {
      for (const o of ops.filter((x) => (x.op.security ?? []).length === 0 || has(x.op.security, []))) {
        const res = await request(o, {});
        assert.ok(res.status !== 401 && res.status !== 403, `${o.key}: ${res.status} ${res.code}`);
      }
    });

    test('host-token operations refuse an API token; API-token operations refuse a host token (403)', async () => {
      for (const o of ops) {
        const sec = o.op.security ?? [];
        if (sec.length === 0 || has(sec, [])) continue;
        const hostOk = has(sec, ['hostToken']);
        const apiOk = has(sec, ['apiToken']);
        if (hostOk && !apiOk) {
          const res = await request(o, { authorization: `Bearer ${h.adminToken}` });
          assert.deepEqual(res, { status: 403, code: 'FORBIDDEN' }, `${o.key} with the admin token`);
        }
        if (apiOk && !hostOk) {
          const res = await request(o, { authorization: `Bearer ${hostToken}` });
          assert.deepEqual(res, { status: 403, code: 'FORBIDDEN' }, `${o.key} with a host token`);
        }
      }
    });

    test('the session cookie works where the document says, with the CSRF header on changes', async () => {
      const signIn = await fetch(`${h.server.url}/api/v1/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ token: h.adminToken }),
      });
      assert.equal(signIn.status, 200);
      const signInSchema =
        doc.paths['/api/v1/session']?.['post']?.responses['200']?.content?.['application/json']?.schema;
      assert.deepEqual(validator(signInSchema as TSchema, 'sign-in').problems(await signIn.json()), []);
      const cookie = (signIn.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
      assert.match(cookie, /=/);
      let checked = 0;
      for (const o of ops) {
        const sec = o.op.security ?? [];
        if (has(sec, ['session', 'csrf'])) {
          const res = await request(o, { cookie });
          assert.deepEqual(res, { status: 403, code: 'CSRF_INVALID' }, `${o.key} with the cookie, no CSRF header`);
          checked++;
        } else if (has(sec, ['session']) && o.op['x-livegraft-role'] !== 'worker') {
          // The admin's session reaches every role but the worker's.
          const res = await request(o, { cookie });
          assert.ok(res.status !== 401 && res.status !== 403, `${o.key} with the cookie: ${res.status} ${res.code}`);
          checked++;
        } else if (!has(sec, []) && sec.length > 0) {
          const res = await request(o, { cookie });
          assert.ok(res.status === 401 || res.status === 403, `${o.key} takes no cookie, answered ${res.status}`);
        }
      }
      assert.ok(checked > 50, `${checked} operations checked with the cookie`);
    });
  });

  test('@redocly/cli lint reports no errors (warnings only for operations with no 4xx answer)', async (t) => {
    const dir = await mkdtemp(join(tmpdir(), 'livegraft-openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      await writeFile(file, JSON.stringify(doc));
      const report = await redoclyLint(file);
      t.diagnostic(`redocly: ${report.totals.errors} errors, ${report.totals.warnings} warnings`);
      const problems = report.problems as { ruleId: string; severity: string; message: string }[];
      assert.deepEqual(
        problems.filter((p) => p.severity === 'error').map((p) => `${p.ruleId}: ${p.message}`),
        [],
      );
      assert.equal(report.totals.errors, 0);
      assert.deepEqual(
        [...new Set(problems.map((p) => p.ruleId))].filter((r) => r !== 'operation-4xx-response'),
        [],
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
