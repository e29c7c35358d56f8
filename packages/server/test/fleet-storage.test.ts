import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { openDatabase } from '../src/db/open.ts';
import { runStorageContract } from './fleet-storage-contract.ts';
import { pgSkip, startPostgres, type PgCluster } from './pg-harness.ts';

runStorageContract('SQLite', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'livegraft-contract-'));
  const { db, readSync, writeSync } = await openDatabase(dir);
  return {
    db,
    ...(readSync === undefined ? {} : { readSync }),
    ...(writeSync === undefined ? {} : { writeSync }),
    async close() {
      await db.destroy();
      await rm(dir, { recursive: true, force: true });
    },
  };
});

let cluster: PgCluster | undefined;
after(async () => cluster?.stop());

runStorageContract(
  'PostgreSQL',
  async () => {
    cluster = await startPostgres();
    const { db } = await openDatabase('.', { url: await cluster.createDatabase(), poolSize: 4 });
    return { db, close: () => db.destroy() };
  },
  pgSkip,
);
