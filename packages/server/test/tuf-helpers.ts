import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { Updater } from 'tuf-js';
import {
  parseTufKeyFile,
  targetCustomValidator,
  tufTargetPath,
  type PatchManifest,
  type TufKeyFile,
  type TufRole,
} from '@livegraft/protocol';
import { kernelIdentity, type Harness } from './helpers.ts';

/** A clock the test moves by hand; starts at real time because the TUF client checks expiry against real time. */
export function adjustableClock(): { clock: () => Date; set: (ms: number) => void; shift: (ms: number) => void } {
  let offset = 0;
  return {
    clock: () => new Date(Date.now() + offset),
    set: (ms) => (offset = ms),
    shift: (ms) => (offset += ms),
  };
}

export async function enrolRoot(h: Harness): Promise<Record<string, unknown>> {
  const res = await h.call('POST', '/hosts/enroll', {
    token: null,
    json: { registrationKey: h.registrationKey, hostname: 'web-1', kernel: kernelIdentity(), agentVersion: '0.1.0' },
  });
  if (res.status !== 201) throw new Error(`enrol failed: ${res.status} ${res.bytes.toString()}`);
  const root = (res.json as { root?: Record<string, unknown> }).root;
  if (root === undefined) throw new Error('the enrol answer has no root');
  return root;
}

/** A TUF client as an agent would run it: a metadata dir seeded with a pinned root, persisting between refreshes. */
export class TestClient {
  readonly dir: string;
  base: string;

  private constructor(dir: string, base: string) {
    this.dir = dir;
    this.base = base;
  }

  static async create(base: string, root: unknown): Promise<TestClient> {
    const dir = await mkdtemp(join(tmpdir(), 'livegraft-tuf-client-'));
    await mkdir(join(dir, 'metadata'));
    await mkdir(join(dir, 'targets'));
    await writeFile(join(dir, 'metadata', 'root.json'), JSON.stringify(root));
    return new TestClient(dir, base);
  }

  updater(): Updater {
    return new Updater({
      metadataDir: join(this.dir, 'metadata'),
      metadataBaseUrl: `${this.base}/tuf/metadata`,
      targetDir: join(this.dir, 'targets'),
      targetBaseUrl: `${this.base}/tuf/targets`,
      config: { fetchRetry: 0 },
    });
  }

  /** Refreshes, then downloads one level; returns its bytes and the manifest from the signed custom field. */
  async fetchLevel(
    kernelId: string,
    level: number,
    name: string,
  ): Promise<{ bytes: Buffer; manifest: PatchManifest } | undefined> {
    const u = this.updater();
    await u.refresh();
    const info = await u.getTargetInfo(tufTargetPath(kernelId, level, name));
    if (info === undefined) return undefined;
    const out = join(this.dir, 'targets', `${name}.ko`);
    await rm(out, { force: true });
    await u.downloadTarget(info, out);
    const custom = targetCustomValidator.parse(info.custom);
    return { bytes: await readFile(out), manifest: custom.livegraft.manifest };
  }

  async trustedRootVersion(): Promise<number> {
    const root = JSON.parse(await readFile(join(this.dir, 'metadata', 'root.json'), 'utf8')) as {
      signed: { version: number };
    };
    return root.signed.version;
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export async function readKey(h: Harness, role: TufRole): Promise<TufKeyFile> {
  return parseTufKeyFile(JSON.parse(await readFile(join(h.dataDir, 'keys', `${role}.json`), 'utf8')), role);
}

/**
 * Direct access to the server's SQLite file, to tamper with stored metadata
 * as an attacker with disk access would. The server then forgets what it
 * serves from memory, as it does after any fleet change.
 */
export function withDb<T>(h: Harness, fn: (db: DatabaseSync) => T): T {
  const db = new DatabaseSync(join(h.dataDir, 'livegraft.db'));
  try {
    return fn(db);
  } finally {
    db.close();
    h.server.tuf.forgetServed();
  }
}

export function latestMetadata(h: Harness, role: string): { version: number; json: string } {
  return withDb(h, (db) => {
    const row = db
      .prepare('SELECT version, json FROM tuf_metadata WHERE role = ? ORDER BY version DESC LIMIT 1')
      .get(role) as { version: number; json: string } | undefined;
    if (row === undefined) throw new Error(`no ${role} metadata`);
    return row;
  });
}
