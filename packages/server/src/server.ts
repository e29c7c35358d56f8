import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyHttpOptions } from 'fastify';
import type { Server } from 'node:http';
import { pino, type Logger } from 'pino';
import { API_PREFIX } from '@livegraft/protocol';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import fastifySwagger from '@fastify/swagger';
import { createAuthenticator, hashToken } from './auth.ts';
import type { Config } from './config.ts';
import type { App, RouteContext } from './context.ts';
import { HostRepository } from './db/hosts.ts';
import { openDatabase } from './db/open.ts';
import { PatchRepository } from './db/patches.ts';
import { installErrorHandling } from './errors.ts';
import { installAnswerHeaders } from './answer-headers.ts';
import {
  installBodyDeadline,
  SLOW_CLIENT_LIMITS,
  slowClientServerOptions,
  type SlowClientLimits,
} from './slow-clients.ts';
import { healthRoutes } from './routes/health.ts';
import { hostRoutes } from './routes/hosts.ts';
import { moduleRoutes } from './routes/modules.ts';
import { patchRoutes } from './routes/patches.ts';
import {
  ADMIN_TOKEN_FILE,
  loadOrCreateSecret,
  randomSecret,
  REGISTRATION_KEY_FILE,
  type LoadedSecret,
} from './secrets.ts';
import { RequestLogController } from './request-log.ts';
import { ModuleStore } from './store.ts';
import { typeboxValidatorCompiler } from './validation.ts';
import { tufRoutes } from './routes/tuf.ts';
import { createFleetRuntime, fleetRoutes, tlsOptions, type FleetDeps, type FleetRuntime } from './fleet/runtime.ts';
import { opsRoutes } from './routes/ops.ts';
import { swaggerOptions } from './openapi/document.ts';
import type { Kysely } from 'kysely';
import { ComplianceService, type ComplianceOptions } from './compliance/service.ts';
import { complianceRoutes } from './routes/compliance.ts';
import { exposureRoutes } from './routes/exposure.ts';
import { tripwireRoutes } from './routes/tripwires.ts';
import { vexRoutes } from './routes/vex.ts';
import { TufRepository, type TufOptions } from './tuf/repository.ts';
import { createDashboard } from './dashboard/index.ts';
import { createPipeline } from './pipeline/service.ts';
import { coverageReport } from './pipeline/coverage.ts';
import { pipelineRoutes } from './routes/pipeline.ts';
import { jobRoutes } from './routes/jobs.ts';
import { UserspaceRepository } from './userspace/repository.ts';
import { userspaceRoutes, userspaceTufRoutes } from './userspace/routes.ts';
import { installRoutes, rootFingerprint } from './routes/install.ts';

export const MODULES_DIR = 'modules';
export const TUF_KEYS_DIR = 'keys';
export const TUF_ROOTS_DIR = 'tuf/roots';
/** JSON bodies (manifests, check-ins) are small; modules have their own limit. */
const MAX_JSON_BODY_BYTES = 1024 * 1024;

export interface ServerDeps {
  clock?: () => Date;
  logger?: Logger;
  /** Makes host tokens and first-start secrets. */
  randomToken?: () => string;
  randomId?: () => string;
  /** TUF expiry and refresh period overrides (tests shorten them). */
  tuf?: Pick<TufOptions, 'expirySec' | 'refreshIntervalMs'>;
  /** Push heartbeat, spread randomness, rate-limit clock, promotion timer. */
  fleet?: FleetDeps;
  /** CVE dataset, webhook fetch and retry timing overrides (tests). */
  compliance?: Pick<
    ComplianceOptions,
    'dataset' | 'fetch' | 'alertBackoffMs' | 'defaultPolicy' | 'tripwireLimits' | 'datasetCheckMs'
  >;
  /** The built dashboard to serve on `/` (default: the dashboard workspace's dist). */
  dashboardDir?: string;
  /** Header, body and upload deadlines for slow clients (tests shorten them). */
  slowClients?: Partial<SlowClientLimits>;
}

export const SERVER_VERSION = '0.1.0';

export interface LivegraftServer {
  app: App;
  config: Config;
  /** Absolute data directory. */
  dataDir: string;
  tuf: TufRepository;
  /** Feeds, promotions, push streams, metrics. */
  fleet: FleetRuntime;
  /** Stops the HTTP server and closes the database. */
  close(): Promise<void>;
}

function logSecret(log: Logger, what: string, s: LoadedSecret): void {
  if (s.source === 'created') log.info({ path: s.path }, `created ${what} (mode 0600)`);
  if (s.looseMode === true) log.warn({ path: s.path }, `${what} file is readable by group or others; chmod 600 it`);
}

/** Builds the server on a data dir (creating and migrating it if needed) without listening. */
export async function createServer(config: Config, deps: ServerDeps = {}): Promise<LivegraftServer> {
  const clock = deps.clock ?? (() => new Date());
  const randomToken = deps.randomToken ?? randomSecret;
  const randomId = deps.randomId ?? randomUUID;
  const logger = deps.logger ?? pino({ level: config.logLevel, base: { service: 'livegraft-server' } });
  const dataDir = resolve(config.dataDir);

  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const adminToken = await loadOrCreateSecret(dataDir, ADMIN_TOKEN_FILE, config.adminToken, randomToken);
  const registrationKey = await loadOrCreateSecret(dataDir, REGISTRATION_KEY_FILE, config.registrationKey, randomToken);
  logSecret(logger, 'admin token', adminToken);
  logSecret(logger, 'registration key', registrationKey);
  const modules = new ModuleStore(join(dataDir, MODULES_DIR));
  await modules.init();
  const database = await openDatabase(dataDir, {
    url: config.database,
    poolSize: config.dbPoolSize,
    onIdleError: (err) => logger.warn({ err }, 'an idle database connection broke'),
  });
  const db = database.db;

  const userspace = new UserspaceRepository(db as unknown as Kysely<unknown>);
  let tuf: TufRepository;
  try {
    tuf = await TufRepository.open(
      {
        keysDir: config.tufKeysDir === undefined ? join(dataDir, TUF_KEYS_DIR) : resolve(config.tufKeysDir),
        rootsDir: join(dataDir, TUF_ROOTS_DIR),
        rootFiles: (config.tufRoots ?? []).map((f) => resolve(f)),
        ...deps.tuf,
      },
      { db, clock, log: logger, extraTargets: () => userspace.publishedTargets() },
    );
  } catch (err) {
    await db.destroy();
    throw err;
  }

  const hosts = new HostRepository(
    db,
    (err) => logger.error({ err }, 'could not store check-in heartbeats'),
    database.readSync,
    database.writeSync,
  );
  const patches = new PatchRepository(db);
  const rt = createFleetRuntime({ config, database, hosts, patches, clock, randomId, log: logger, deps: deps.fleet });
  const https = await tlsOptions(config).catch(async (err: unknown) => {
    await db.destroy();
    throw err;
  });
  const compliance = await ComplianceService.create({
    db: db as unknown as Kysely<unknown>,
    dataDir,
    clock,
    log: logger,
    randomId,
    listHosts: (filter) => hosts.list(filter),
    alertWebhook: config.alertWebhook,
    vexAuthor: config.vexAuthor,
    registry: rt.metrics.registry,
    soleWriter: database.kind === 'sqlite',
    writeSync: database.writeSync,
    ...deps.compliance,
  }).catch(async (err: unknown) => {
    await db.destroy();
    throw err;
  });
  const dashboard = createDashboard({
    db: db as unknown as Kysely<unknown>,
    audit: rt.fleet.audit,
    clock,
    log: logger,
    dir: deps.dashboardDir,
  });
  const auth = createAuthenticator(adminToken.value, hosts, rt.fleet.tokens, dashboard.cookies, () =>
    clock().getTime(),
  );
  rt.onNotice((n) => {
    if (n.kind === 'revoke') auth.forgetHosts(n.hostIds);
    // A change on any node may have re-signed the TUF metadata this node serves from memory.
    tuf.forgetServed();
  });
  const ctx: RouteContext = {
    config,
    clock,
    randomToken,
    randomId,
    auth,
    patches,
    hosts,
    modules,
    registrationKeyHash: hashToken(registrationKey.value),
    tuf,
    fleet: rt.fleet,
    push: rt.push,
    metrics: rt.metrics,
    enrollLimit: rt.enrollLimit,
    compliance,
    userspace,
  };

  const pipeline = createPipeline(ctx, db as unknown as Kysely<unknown>, logger);

  const slowClients = { ...SLOW_CLIENT_LIMITS, ...deps.slowClients };
  const timeouts = slowClientServerOptions(slowClients);
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: MAX_JSON_BODY_BYTES,
    // Behind a reverse proxy the client address and scheme come from its X-Forwarded-* headers, and only from it.
    trustProxy: config.trustProxy === undefined ? false : [...config.trustProxy],
    requestTimeout: timeouts.requestTimeout,
    http: timeouts.http,
    logController: new RequestLogController(),
    // The App type is the plain-HTTP one; with TLS Fastify serves HTTPS through the same interface.
    ...((https === undefined ? {} : { https: { ...https, ...timeouts.http } }) as FastifyHttpOptions<Server>),
  }).withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('preClose', (done) => {
    rt.closeStreams();
    done();
  });
  app.addHook('onClose', async () => {
    await rt.stop();
    await hosts.flushHeartbeats();
    await dashboard.close();
    await tuf.stop();
    await compliance.close();
    await db.destroy();
  });
  try {
    app.setValidatorCompiler(typeboxValidatorCompiler);
    app.decorateRequest('principal', null);
    installErrorHandling(app);
    installAnswerHeaders(app);
    installBodyDeadline(app, slowClients, MAX_JSON_BODY_BYTES);
    // Before any route: it collects them as they register.
    await app.register(fastifySwagger, swaggerOptions(SERVER_VERSION));
    healthRoutes(app);
    tufRoutes(app, ctx);
    userspaceTufRoutes(app, { userspace, modules });
    installRoutes(app, { tuf, agentPackage: config.agentPackage });
    opsRoutes(app, ctx);
    dashboard.pages(app, ctx);
    await app.register(
      (api, _opts, done) => {
        moduleRoutes(api, ctx);
        patchRoutes(api, ctx);
        hostRoutes(api, ctx);
        fleetRoutes(api, ctx);
        exposureRoutes(api, ctx, compliance);
        complianceRoutes(api, ctx, compliance, () => coverageReport(pipeline.db, compliance.exposure, ctx.clock()));
        vexRoutes(api, ctx, compliance);
        tripwireRoutes(api, ctx, compliance);
        dashboard.api(api, ctx);
        pipelineRoutes(api, ctx, pipeline, compliance.exposure);
        jobRoutes(api, ctx, pipeline);
        userspaceRoutes(api, { ...ctx, userspace });
        done();
      },
      { prefix: API_PREFIX },
    );
    await app.ready();
    tuf.start();
    await rt.start();
  } catch (err) {
    await app.close();
    throw err;
  }

  return { app, config, dataDir, tuf, fleet: rt, close: () => app.close() };
}

export interface RunningServer extends LivegraftServer {
  /** e.g. http://127.0.0.1:8720 */
  url: string;
}

/** createServer, then listen on config.host:config.port (0 picks a free port). */
export async function startServer(config: Config, deps: ServerDeps = {}): Promise<RunningServer> {
  const server = await createServer(config, deps);
  try {
    const url = await server.app.listen({
      host: config.host,
      port: config.port,
      listenTextResolver: (address) => `livegraft-server listening at ${address}`,
    });
    // What hosts pin at enrolment (install.sh --root-sha256, livegraft keys fingerprint).
    const root = await rootFingerprint(server.tuf);
    server.app.log.info(
      { rootVersion: root.version, rootSha256: root.sha256 },
      `TUF root version ${root.version} fingerprint (SHA-256 of ${root.version}.root.json): ${root.sha256}`,
    );
    return { ...server, url };
  } catch (err) {
    await server.close();
    throw err;
  }
}
