import { after } from 'node:test';
import { pipelineSuite } from './pipeline-suite.ts';
import { pgSkip, startPostgres, type PgCluster } from './pg-harness.ts';

let cluster: Promise<PgCluster> | undefined;
after(async () => {
  if (cluster !== undefined) await (await cluster).stop();
});

pipelineSuite(
  'PostgreSQL',
  async () => {
    cluster ??= startPostgres();
    return (await cluster).createDatabase();
  },
  pgSkip,
);
