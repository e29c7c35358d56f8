import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { moduleNameFor, tufTargetPath } from '@livegraft/protocol';
import type { CliOverrides } from '../src/cli/program.ts';
import { TestHost, type CliRun } from './helpers/cli.ts';
import { FakeServer, REGISTRATION_KEY } from './helpers/fake-server.ts';
import { makePatch } from './helpers/patches.ts';
import { newKey } from './helpers/tuf-repo.ts';

/** Short delivery bounds so slow-server cases take about a second. */
const FAST: CliOverrides = {
  agent: {
    deliveryLimits: { requestTimeoutMs: 5_000, totalTimeoutMs: 8_000, stallTimeoutMs: 700, minBytesPerSec: 200 },
  },
};

interface Status {
  appliedLevel: number;
  lastError: { code: string; message: string } | null;
  lastApply: { ok: boolean; code?: string; toLevel: number; action: string } | null;
  trustedRootVersion: number | null;
  highestLevel: number;
  checkStale: boolean;
  lastCheckAgeSec: number | null;
}

/** An enrolled host running level 1, and a server offering level 2: each case breaks delivery of level 2. */
class Setup {
  server!: FakeServer;
  host!: TestHost;

  async start(): Promise<void> {
    this.server = await new FakeServer().start();
    this.host = new TestHost();
    const e = await this.host.cli(['enroll', '--insecure', '--server', this.server.url, '--key', REGISTRATION_KEY]);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stdout, /pinned TUF root version 1 from the enrol answer/);
    this.server.publish(this.host.kernel.id, makePatch(this.host.kernel, 1));
    const u = await this.host.cli(['update']);
    assert.equal(u.code, 0, u.stderr);
    this.server.publish(this.host.kernel.id, makePatch(this.host.kernel, 2));
  }

  async stop(): Promise<void> {
    await this.server.stop();
    this.host.cleanup();
  }

  get l1(): string {
    return moduleNameFor(this.host.kernel.id, 1);
  }
  get l2(): string {
    return moduleNameFor(this.host.kernel.id, 2);
  }
  get metadataDir(): string {
    return join(this.host.stateDir, 'tuf/metadata');
  }
  l2Target(): string {
    this.server.sync();
    return this.server.repo.targetUrlPath(tufTargetPath(this.host.kernel.id, 2, this.l2));
  }

  async status(): Promise<Status> {
    return JSON.parse((await this.host.cli(['status', '--json'])).stdout) as Status;
  }

  /** The update is refused with `code`; level 1 stays, nothing new is loaded or cached, staging is gone. */
  async expectRefused(code: string, overrides: CliOverrides = {}): Promise<CliRun> {
    const loads = this.host.kernel.loads().length;
    const metadataBefore = this.#metadataSnapshot();
    const r = await this.host.cli(['update', '--json'], overrides);
    assert.equal(r.code, 4, `${r.stdout}\n${r.stderr}`);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, code, r.stderr);
    assert.equal(this.host.kernel.loads().length, loads, 'nothing loaded');
    assert.equal(this.host.kernel.patchEnabled(this.l1), true, 'level 1 still applied');
    assert.equal(existsSync(join(this.host.stateDir, 'cache', this.host.kernel.id, '2', 'manifest.json')), false);
    assert.deepEqual(
      readdirSync(join(this.host.stateDir, 'tuf')).filter((n) => n.startsWith('staging.')),
      [],
      'staging cleaned',
    );
    const s = await this.status();
    assert.equal(s.appliedLevel, 1);
    assert.equal(s.lastError?.code, code);
    // A refused refresh leaves the trusted metadata as it was (or newer, when only the module was bad).
    this.#assertMetadataUnchangedOrNewer(metadataBefore);
    return r;
  }

  #metadataSnapshot(): Map<string, string> {
    const m = new Map<string, string>();
    for (const f of ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json']) {
      try {
        m.set(f, readFileSync(join(this.metadataDir, f), 'utf8'));
      } catch {
        // absent
      }
    }
    return m;
  }

  /** Every trusted file parses and its version did not go down. */
  #assertMetadataUnchangedOrNewer(before: Map<string, string>): void {
    for (const [f, text] of before) {
      try {
        JSON.parse(text);
      } catch {
        continue; // was damaged on purpose
      }
      const now = JSON.parse(readFileSync(join(this.metadataDir, f), 'utf8')) as { signed: { version: number } };
      const was = JSON.parse(text) as { signed: { version: number } };
      assert.ok(
        now.signed.version >= was.signed.version,
        `${f} went from ${was.signed.version} to ${now.signed.version}`,
      );
    }
  }
}

describe('signed delivery: the happy path', () => {
  const t = new Setup();
  before(() => t.start());
  after(() => t.stop());

  it('fetches level 2 through TUF (consistent snapshot names) and applies it', async () => {
    const before = t.server.tufRequests.length;
    const r = await t.host.cli(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(t.host.kernel.patchEnabled(t.l2), true);
    const asked = t.server.tufRequests.slice(before);
    assert.ok(asked.includes('2.root.json'), 'looked for a newer root');
    assert.ok(asked.includes('timestamp.json'));
    assert.ok(asked.some((f) => /^\d+\.snapshot\.json$/.test(f)));
    assert.ok(asked.some((f) => /^\d+\.targets\.json$/.test(f)));
    assert.ok(asked.includes(t.l2Target()), `asked ${asked.join(', ')}`);
    for (const f of ['root.json', 'timestamp.json', 'snapshot.json', 'targets.json']) {
      assert.ok(existsSync(join(t.metadataDir, f)), f);
    }
    assert.ok(existsSync(join(t.host.stateDir, 'tuf/root.last-good.json')));
    const s = await t.status();
    assert.equal(s.trustedRootVersion, 1);
    assert.equal(s.highestLevel, 2);
  });

  it('follows a root rotation signed by the old and new keys, and keeps it as last-known-good', async () => {
    t.server.repo.rotateRoot();
    t.server.publish(t.host.kernel.id, makePatch(t.host.kernel, 3));
    const r = await t.host.cli(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await t.status()).trustedRootVersion, 2);
    const good = JSON.parse(readFileSync(join(t.host.stateDir, 'tuf/root.last-good.json'), 'utf8')) as {
      signed: { version: number };
    };
    assert.equal(good.signed.version, 2);
  });

  it('uses the mirror from the config for metadata and modules, the server only for check-in', async () => {
    const mirror = await new FakeServer().start();
    try {
      // The mirror serves the same signed files, byte for byte.
      t.server.publish(t.host.kernel.id, makePatch(t.host.kernel, 4));
      t.server.sync();
      mirror.tufHook = (file, res) => {
        const bytes = t.server.repo.files.get(file);
        if (bytes === undefined) {
          res.writeHead(404).end();
        } else {
          res.writeHead(200, { 'content-length': bytes.length }).end(bytes);
        }
        return true;
      };
      const config = JSON.parse(readFileSync(t.host.configPath, 'utf8')) as Record<string, unknown>;
      writeFileSync(t.host.configPath, JSON.stringify({ ...config, mirror: mirror.url }));
      const before = t.server.tufRequests.length;
      const r = await t.host.cli(['update']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(t.host.kernel.patchEnabled(moduleNameFor(t.host.kernel.id, 4)), true);
      assert.equal(t.server.tufRequests.length, before, 'nothing fetched from the server');
      assert.ok(mirror.tufRequests.some((f) => f.startsWith('targets/')));
      writeFileSync(t.host.configPath, JSON.stringify(config));
    } finally {
      await mirror.stop();
    }
  });
});

describe('signed delivery: faults (each one leaves level 1 in place)', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('a corrupt target (bit flipped by the mirror) fails the signed hash', async () => {
    const target = t.l2Target();
    t.server.tufHook = (file, res) => {
      if (file !== target) return false;
      const b = Buffer.from(t.server.repo.files.get(file) ?? Buffer.alloc(0));
      b[100] = (b[100] ?? 0) ^ 0x01;
      res.writeHead(200, { 'content-length': b.length }).end(b);
      return true;
    };
    await t.expectRefused('TUF_HASH_MISMATCH');
  });

  it('a truncated target fails the signed length', async () => {
    const target = t.l2Target();
    t.server.tufHook = (file, res) => {
      if (file !== target) return false;
      const b = (t.server.repo.files.get(file) ?? Buffer.alloc(0)).subarray(0, 50);
      res.writeHead(200, { 'content-length': b.length }).end(b);
      return true;
    };
    await t.expectRefused('TUF_HASH_MISMATCH');
  });

  it('an oversized target is cut off at its signed length', async () => {
    t.server.oversizeBy = 1024 * 1024;
    await t.expectRefused('DOWNLOAD_TOO_LARGE');
  });

  it('an endless timestamp is cut off at the timestamp cap', async () => {
    t.server.tufHook = (file, res) => {
      if (file !== 'timestamp.json') return false;
      res.writeHead(200);
      res.write(Buffer.alloc(64 * 1024, 0x20));
      res.end();
      return true;
    };
    await t.expectRefused('DOWNLOAD_TOO_LARGE');
  });

  it('expired metadata is refused', async () => {
    t.server.repo.expiresInMs = -3600_000;
    t.server.publish(t.host.kernel.id, makePatch(t.host.kernel, 3));
    const r = await t.expectRefused('TUF_METADATA_EXPIRED');
    assert.match(r.stderr, /expired/);
  });

  it('a rolled-back timestamp (older version than the trusted one) is refused', async () => {
    const repo = t.server.repo;
    t.server.sync();
    // Trust the current timestamp first, then serve an older one (validly signed).
    const old = repo.files.get('timestamp.json') as Buffer;
    repo.publish();
    assert.equal((await t.host.cli(['update'])).code, 0);
    await t.host.cli(['rollback', '--to', '1']);
    t.server.tufHook = (file, res) => {
      if (file !== 'timestamp.json') return false;
      res.writeHead(200, { 'content-length': old.length }).end(old);
      return true;
    };
    const loads = t.host.kernel.loads().length;
    const r = await t.host.cli(['update', '--json']);
    assert.equal(r.code, 4);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'TUF_METADATA_ROLLBACK', r.stderr);
    assert.equal(t.host.kernel.loads().length, loads);
  });

  it('mix-and-match: a timestamp naming a snapshot with another hash is refused', async () => {
    const repo = t.server.repo;
    t.server.sync();
    // A validly signed timestamp over bytes of the right length that are not the served snapshot.
    const real = repo.files.get(`${repo.snapshotVersion}.snapshot.json`) as Buffer;
    const other = Buffer.from(real);
    other[10] = (other[10] ?? 0) ^ 0x01;
    repo.signTimestamp(other);
    await t.expectRefused('TUF_HASH_MISMATCH');
  });

  it('mix-and-match: a snapshot naming a targets version that is not the one served is refused', async () => {
    const repo = t.server.repo;
    t.server.sync();
    const current = `${repo.targetsVersion}.targets.json`;
    const older = `${repo.targetsVersion - 1}.targets.json`;
    t.server.tufHook = (file, res) => {
      if (file !== current) return false;
      const b = repo.files.get(older) as Buffer;
      res.writeHead(200, { 'content-length': b.length }).end(b);
      return true;
    };
    const r = await t.host.cli(['update', '--json']);
    assert.equal(r.code, 4);
    assert.match(
      (JSON.parse(r.stdout) as { error: { code: string } }).error.code,
      /^TUF_(HASH_MISMATCH|METADATA_ROLLBACK)$/,
    );
    assert.equal(t.host.kernel.patchEnabled(t.l1), true);
  });

  it('targets signed by a key the root does not list are refused', async () => {
    t.server.sync();
    // Snapshot and timestamp are genuine and consistent with the forged targets: only the signature is wrong.
    t.server.repo.publish({ targetsSigner: newKey() });
    t.server.sync = () => undefined;
    await t.expectRefused('TUF_SIGNATURE_INVALID');
  });

  it('a server offering a level the repository never signed is refused (TUF_TARGET_MISSING)', async () => {
    t.server.sync();
    const signed = new Map(t.server.repo.targets);
    t.server.repo.targets.clear();
    for (const [p, v] of signed) if (!p.includes('/2/')) t.server.repo.targets.set(p, v);
    t.server.repo.publish();
    // sync() would re-add it: freeze the repository as it is now.
    t.server.sync = () => undefined;
    await t.expectRefused('TUF_TARGET_MISSING');
  });

  it('a 1 byte/s server is cut off by the minimum rate', async () => {
    const target = t.l2Target();
    const timers: NodeJS.Timeout[] = [];
    t.server.tufHook = (file, res) => {
      if (file !== target) return false;
      const b = t.server.repo.files.get(file) as Buffer;
      res.writeHead(200, { 'content-length': b.length });
      let i = 0;
      const tick = (): void => {
        if (res.destroyed || i >= b.length) return;
        res.write(b.subarray(i, i + 1));
        i++;
        timers.push(setTimeout(tick, 1000));
      };
      tick();
      return true;
    };
    const started = Date.now();
    // A byte a second never trips the 1.5 s stall timeout: only the rate check can stop it.
    const r = await t.expectRefused('DOWNLOAD_STALLED', {
      agent: {
        deliveryLimits: {
          requestTimeoutMs: 60_000,
          totalTimeoutMs: 60_000,
          stallTimeoutMs: 1_500,
          minBytesPerSec: 200,
        },
      },
    });
    for (const x of timers) clearTimeout(x);
    assert.match(r.stderr, /below the minimum of 200 bytes\/s/);
    assert.ok(Date.now() - started < 5_000, `took ${Date.now() - started} ms`);
  });

  it('a server that answers the timestamp headers and then nothing is cut off by the stall timeout', async () => {
    t.server.tufHook = (file, res) => {
      if (file !== 'timestamp.json') return false;
      res.writeHead(200, { 'content-length': 1000 });
      res.write('{');
      return true;
    };
    await t.expectRefused('DOWNLOAD_STALLED', FAST);
  });

  it('the total deadline bounds the whole update even when each request is fast enough', async () => {
    const target = t.l2Target();
    t.server.tufHook = (file, res) => {
      if (file !== target) return false;
      const b = t.server.repo.files.get(file) as Buffer;
      res.writeHead(200, { 'content-length': b.length });
      // Fast enough for the rate check, but never done before the total deadline.
      const iv = setInterval(() => {
        if (res.destroyed) clearInterval(iv);
        else res.write(Buffer.alloc(0));
      }, 100);
      res.write(b.subarray(0, 10));
      return true;
    };
    const r = await t.expectRefused('DOWNLOAD_TIMEOUT', {
      agent: {
        deliveryLimits: { requestTimeoutMs: 60_000, totalTimeoutMs: 1_500, stallTimeoutMs: 10_000, minBytesPerSec: 1 },
      },
    });
    assert.match(r.stderr, /did not finish within 1500 ms/);
  });

  it('a full disk while staging the module fails cleanly (injected ENOSPC)', async () => {
    const r = await t.expectRefused('DISK_FULL', {
      agent: {
        writeChunk: (fd, chunk) => {
          // Metadata goes through; the module (an ELF) hits a full disk.
          if (Buffer.from(chunk.subarray(0, 4)).toString('latin1') === '\x7fELF') {
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
          }
          let off = 0;
          while (off < chunk.byteLength) off += writeSync(fd, chunk, off);
        },
      },
    });
    assert.match(r.stderr, /no space left/);
  });

  it('a server error while fetching metadata is transient: nothing changes, status shows the stale check', async () => {
    t.server.tufHook = (file, res) => {
      if (file !== 'timestamp.json') return false;
      res.writeHead(503).end();
      return true;
    };
    await t.expectRefused('SERVER_ERROR');
  });
});

describe('signed delivery: trust anchor', () => {
  const t = new Setup();
  beforeEach(() => t.start());
  afterEach(() => t.stop());

  it('a corrupt root.json falls back to root.last-good.json and is repaired', async () => {
    writeFileSync(join(t.metadataDir, 'root.json'), '{"signed": truncated');
    const r = await t.host.cli(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /falling back to the last-known-good root/);
    assert.equal(t.host.kernel.patchEnabled(t.l2), true);
    JSON.parse(readFileSync(join(t.metadataDir, 'root.json'), 'utf8'));
  });

  it('a corrupt root with no last-known-good fails closed, fetching no metadata at all', async () => {
    writeFileSync(join(t.metadataDir, 'root.json'), '{"signed": truncated');
    writeFileSync(join(t.host.stateDir, 'tuf/root.last-good.json'), 'garbage');
    const before = t.server.tufRequests.length;
    await t.expectRefused('TUF_ROOT_INVALID');
    assert.equal(t.server.tufRequests.length, before, 'no trust on first use');
    assert.equal((await t.status()).trustedRootVersion, null);
  });

  it('a root signed by someone else cannot be pinned', async () => {
    const evil = JSON.parse(t.server.repo.rootBytes(1).toString()) as { signatures: { sig: string }[] };
    const first = evil.signatures[0];
    if (first) first.sig = '00'.repeat(64);
    const file = join(t.host.root, 'evil-root.json');
    writeFileSync(file, JSON.stringify(evil));
    const r = await t.host.cli(['pin-root', file]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[TUF_ROOT_INVALID\]/);
    assert.equal((await t.status()).trustedRootVersion, 1);
  });

  it('a host enrolled without any root fails closed until one is pinned', async () => {
    const other = new TestHost();
    try {
      t.server.enrollRoot = null;
      const e = await other.cli(['enroll', '--insecure', '--server', t.server.url, '--key', REGISTRATION_KEY]);
      assert.equal(e.code, 0, e.stderr);
      assert.match(e.stdout, /updates will fail closed/);
      const r = await other.cli(['update', '--json']);
      assert.equal(r.code, 4);
      assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'TUF_ROOT_MISSING');
      assert.deepEqual(other.kernel.loads(), []);
      const rootFile = join(other.root, '1.root.json');
      writeFileSync(rootFile, t.server.repo.rootBytes(1));
      assert.equal((await other.cli(['pin-root', rootFile])).code, 0);
      const ok = await other.cli(['update']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.equal(other.kernel.patchEnabled(moduleNameFor(other.kernel.id, 2)), true);
    } finally {
      other.cleanup();
    }
  });

  it('enroll --root pins the given root instead of the served one', async () => {
    const other = new TestHost();
    try {
      t.server.enrollRoot = { signed: 'not a root' };
      const rootFile = join(other.root, '1.root.json');
      mkdirSync(other.root, { recursive: true });
      writeFileSync(rootFile, t.server.repo.rootBytes(1));
      const e = await other.cli([
        'enroll',
        '--insecure',
        '--server',
        t.server.url,
        '--key',
        REGISTRATION_KEY,
        '--root',
        rootFile,
      ]);
      assert.equal(e.code, 0, e.stderr);
      assert.match(e.stdout, /pinned TUF root version 1 from .*1\.root\.json/);
      const bad = new TestHost();
      try {
        const r = await bad.cli(['enroll', '--insecure', '--server', t.server.url, '--key', REGISTRATION_KEY]);
        assert.equal(r.code, 4);
        assert.match(r.stderr, /TUF_ROOT_INVALID/);
        assert.equal(existsSync(bad.configPath), false, 'no config written with a bad root');
      } finally {
        bad.cleanup();
      }
    } finally {
      other.cleanup();
    }
  });
});

describe('signed delivery: no downgrade', () => {
  const t = new Setup();
  beforeEach(async () => {
    await t.start();
    assert.equal((await t.host.cli(['update'])).code, 0);
    assert.equal(t.host.kernel.patchEnabled(t.l2), true);
  });
  afterEach(() => t.stop());

  it('validly signed metadata whose latest is below the applied level is refused', async () => {
    // Level 2 is withdrawn: the feed's latest (and the signed set) is level 1 again.
    t.server.published.set(t.host.kernel.id, (t.server.published.get(t.host.kernel.id) ?? []).slice(0, 1));
    const loads = t.host.kernel.loads().length;
    const r = await t.host.cli(['update', '--json']);
    assert.equal(r.code, 4);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'DOWNGRADE_REFUSED');
    assert.equal(t.host.kernel.loads().length, loads);
    assert.equal(t.host.kernel.patchEnabled(t.l2), true);
    const d = await t.host.cli(['run', '--once']);
    assert.equal(d.code, 4);
    assert.match(d.stderr, /DOWNGRADE_REFUSED/);
    assert.equal(t.host.kernel.patchEnabled(t.l2), true);
  });

  it('the release counter survives an unload: a lower level offered afterwards is still refused', async () => {
    assert.equal((await t.host.cli(['unload'])).code, 0);
    t.server.published.set(t.host.kernel.id, (t.server.published.get(t.host.kernel.id) ?? []).slice(0, 1));
    const r = await t.host.cli(['update', '--json']);
    assert.equal(r.code, 4);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'DOWNGRADE_REFUSED');
    assert.equal((await t.status()).highestLevel, 2);
  });

  it('a fleet rollback (desired level with allowDowngrade) is taken, through TUF', async () => {
    t.server.desired = { level: 1, reason: 'rollback', allowDowngrade: true };
    const r = await t.host.cli(['update', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { apply: { action: string; toLevel: number } };
    assert.equal(out.apply.action, 'rollback');
    assert.equal(out.apply.toLevel, 1);
    assert.equal(t.host.kernel.patchEnabled(t.l1), true);
    assert.equal(t.host.kernel.moduleLoaded(t.l2), false);
    assert.equal((await t.status()).highestLevel, 1, 'an authorised downgrade resets the counter');
  });

  it('a desired level below the applied one without allowDowngrade is refused', async () => {
    t.server.desired = { level: 1, reason: 'pin', allowDowngrade: false };
    const r = await t.host.cli(['update', '--json']);
    assert.equal(r.code, 4);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'DOWNGRADE_REFUSED');
  });

  it('desired level 0 with allowDowngrade unloads', async () => {
    t.server.desired = { level: 0, reason: 'rollback', allowDowngrade: true };
    const r = await t.host.cli(['update']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(t.host.kernel.moduleLoaded(t.l2), false);
    assert.equal((await t.host.cli(['uname'])).stdout, '6.1.0-99-amd64\n');
  });

  it('a malformed desired field is a bad answer, and nothing changes', async () => {
    t.server.desired = { level: -1, reason: 'whatever' };
    const r = await t.host.cli(['update', '--json']);
    assert.equal(r.code, 4);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'SERVER_BAD_ANSWER');
    assert.equal(t.host.kernel.patchEnabled(t.l2), true);
  });
});

describe('update --from DIR (air-gapped bundle)', () => {
  const t = new Setup();
  before(() => t.start());
  after(() => t.stop());

  const writeBundle = (dir: string): void => {
    t.server.sync();
    for (const [name, bytes] of t.server.repo.files) {
      const path = name.startsWith('targets/') ? join(dir, 'tuf', name) : join(dir, 'tuf/metadata', name);
      mkdirSync(join(path, '..'), { recursive: true });
      writeFileSync(path, bytes);
    }
  };

  it('applies the highest signed level for this kernel from the directory', async () => {
    const dir = join(t.host.root, 'bundle');
    t.server.publish(t.host.kernel.id, makePatch(t.host.kernel, 3));
    writeBundle(dir);
    const before = t.server.tufRequests.length;
    const r = await t.host.cli(['update', '--from', dir]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /applied level 3 \(was 1\)/);
    assert.equal(t.server.tufRequests.length, before, 'no network');
  });

  it('a tampered bundle is refused', async () => {
    const dir = join(t.host.root, 'bundle2');
    t.server.publish(t.host.kernel.id, makePatch(t.host.kernel, 4));
    writeBundle(dir);
    const target = t.server.repo.targetUrlPath(tufTargetPath(t.host.kernel.id, 4, moduleNameFor(t.host.kernel.id, 4)));
    const p = join(dir, 'tuf', target);
    const b = readFileSync(p);
    b[90] = (b[90] ?? 0) ^ 0xff;
    writeFileSync(p, b);
    const r = await t.host.cli(['update', '--from', dir, '--json']);
    assert.equal(r.code, 4);
    assert.equal((JSON.parse(r.stdout) as { error: { code: string } }).error.code, 'TUF_HASH_MISMATCH');
    assert.equal(t.host.kernel.patchEnabled(moduleNameFor(t.host.kernel.id, 3)), true);
  });
});
