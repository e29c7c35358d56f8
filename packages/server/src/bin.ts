#!/usr/bin/env node
import { Command, InvalidArgumentError } from 'commander';
import { isLivegraftError } from '@livegraft/protocol';
import { DEFAULT_CHECKIN_INTERVAL_SEC, DEFAULT_DATA_DIR, DEFAULT_HOST, DEFAULT_PORT, parseConfig } from './config.ts';
import { checkPortFree } from './port-check.ts';
import { startServer } from './server.ts';

/** How long a graceful shutdown may take before we give up on open connections. */
const SHUTDOWN_TIMEOUT_MS = 10_000;
const EXIT_USAGE = 64;

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function integer(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

const program = new Command('livegraft-server')
  .description('Livegraft patch server: stores livepatch modules and manifests, enrols hosts, takes check-ins.')
  .option('--data-dir <dir>', 'data directory (database, modules, secrets)', DEFAULT_DATA_DIR)
  .option('--host <host>', 'address to listen on', DEFAULT_HOST)
  .option('--port <port>', 'TCP port; 0 picks a free one', integer, DEFAULT_PORT)
  .option('--checkin-interval <sec>', 'seconds between agent check-ins', integer, DEFAULT_CHECKIN_INTERVAL_SEC)
  .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent', 'info')
  .option(
    '--tuf-keys-dir <dir>',
    'online TUF keys (targets.json, snapshot.json, timestamp.json); default <data-dir>/keys',
  )
  .option(
    '--tuf-root <file>',
    'import a signed N.root.json at start (repeatable; also read from <data-dir>/tuf/roots/)',
    collect,
    [],
  )
  .option('--alert-webhook <url>', 'POST a JSON alert here for every tripwire report (exploit attempt blocked)')
  .option(
    '--trust-proxy <cidr...>',
    'believe X-Forwarded-For/-Proto only from these reverse proxies (addresses or CIDRs, e.g. 10.0.0.5 10.1.0.0/16)',
  )
  .option(
    '--database <url>',
    'postgres://... to use PostgreSQL (several nodes may share it); default SQLite in <data-dir>',
  )
  .option('--db-pool-size <n>', 'PostgreSQL connections per node at most', integer)
  .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (with --tls-key)')
  .option('--tls-key <file>', 'PEM private key for --tls-cert')
  .option('--push-spread <sec>', 'pushed events tell each host to wait a random delay up to this', integer)
  .option('--promotion-interval <sec>', 'seconds between promotion-rule evaluations', integer)
  .option('--enroll-burst <n>', 'enrolments allowed at once per client IP', integer)
  .option('--enroll-per-minute <n>', 'sustained enrolments per minute per client IP', integer)
  .option('--stall-sec <sec>', 'a reported livepatch transition running this long halts the rollout', integer)
  .option('--job-lease <sec>', 'build jobs: seconds a worker holds a job without a heartbeat (default 120)', integer)
  .option('--catalogue <dir>', 'fix catalogue (a directory of fix directories) that submitted fixes must not duplicate')
  .option('--agent-package <file>', 'livegraft-agent .deb that GET /install.sh installs (env LIVEGRAFT_AGENT_PACKAGE)')
  .option(
    '--vex-author <iri-or-email>',
    "OpenVEX author: your organisation's IRI or email (env LIVEGRAFT_VEX_AUTHOR; default root@<hostname>)",
  )
  .addHelpText(
    'after',
    '\nEnvironment: LIVEGRAFT_ADMIN_TOKEN and LIVEGRAFT_REGISTRATION_KEY override the secrets\n' +
      'that are otherwise read from (or created at first start in) <data-dir>/admin-token and\n' +
      '<data-dir>/registration-key. LIVEGRAFT_DATABASE_URL is the default of --database.',
  );

async function main(): Promise<void> {
  program.parse();
  const opts = program.opts<{
    dataDir: string;
    host: string;
    port: number;
    checkinInterval: number;
    logLevel: string;
    tufKeysDir?: string;
    tufRoot: string[];
    alertWebhook?: string;
    trustProxy?: string[];
    database?: string;
    dbPoolSize?: number;
    tlsCert?: string;
    tlsKey?: string;
    pushSpread?: number;
    promotionInterval?: number;
    enrollBurst?: number;
    enrollPerMinute?: number;
    stallSec?: number;
    jobLease?: number;
    catalogue?: string;
    agentPackage?: string;
    vexAuthor?: string;
  }>();
  let config;
  try {
    config = parseConfig({
      dataDir: opts.dataDir,
      host: opts.host,
      port: opts.port,
      checkinIntervalSec: opts.checkinInterval,
      logLevel: opts.logLevel,
      tufKeysDir: opts.tufKeysDir,
      tufRoots: opts.tufRoot.length > 0 ? opts.tufRoot : undefined,
      alertWebhook: opts.alertWebhook,
      trustProxy: opts.trustProxy,
      database: opts.database ?? (process.env['LIVEGRAFT_DATABASE_URL'] || undefined),
      dbPoolSize: opts.dbPoolSize,
      tlsCert: opts.tlsCert,
      tlsKey: opts.tlsKey,
      pushSpreadSec: opts.pushSpread,
      promotionIntervalSec: opts.promotionInterval,
      enrollBurst: opts.enrollBurst,
      enrollPerMinute: opts.enrollPerMinute,
      stallSec: opts.stallSec,
      jobLeaseSec: opts.jobLease,
      catalogueDir: opts.catalogue,
      agentPackage: opts.agentPackage ?? (process.env['LIVEGRAFT_AGENT_PACKAGE'] || undefined),
      vexAuthor: opts.vexAuthor ?? (process.env['LIVEGRAFT_VEX_AUTHOR'] || undefined),
      adminToken: process.env['LIVEGRAFT_ADMIN_TOKEN'] || undefined,
      registrationKey: process.env['LIVEGRAFT_REGISTRATION_KEY'] || undefined,
    });
  } catch (err) {
    process.stderr.write(`livegraft-server: ${(err as Error).message}\n`);
    process.exit(EXIT_USAGE);
  }
  await checkPortFree(config.host, config.port);
  const server = await startServer(config);
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'shutting down');
    setTimeout(() => process.exit(1), SHUTDOWN_TIMEOUT_MS).unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((err: unknown) => {
  const detail = isLivegraftError(err)
    ? `${err.code}: ${err.message}`
    : err instanceof Error
      ? err.message
      : String(err);
  process.stderr.write(`livegraft-server: ${detail}\n`);
  process.exit(1);
});
