import type {
  FastifyBaseLogger,
  FastifyInstance,
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { Config } from './config.ts';
import type { Authenticator } from './auth.ts';
import type { HostRepository } from './db/hosts.ts';
import type { PatchRepository } from './db/patches.ts';
import type { ModuleStore } from './store.ts';
import type { Fleet } from './fleet/service.ts';
import type { PushHub } from './fleet/push.ts';
import type { ServerMetrics } from './metrics.ts';
import type { RateLimiter } from './rate-limit.ts';
import type { TufRepository } from './tuf/repository.ts';
import type { ComplianceService } from './compliance/service.ts';
import type { UserspaceRepository } from './userspace/repository.ts';

export type App = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

/** Everything a route file needs, built once in createServer. */
export interface RouteContext {
  config: Config;
  clock: () => Date;
  randomToken: () => string;
  randomId: () => string;
  auth: Authenticator;
  patches: PatchRepository;
  hosts: HostRepository;
  modules: ModuleStore;
  registrationKeyHash: string;
  /** Signed delivery: publishing re-signs targets -> snapshot -> timestamp. */
  tuf: TufRepository;
  /** Feeds, pins, rollbacks, tokens, audit; announces changes to every node. */
  fleet: Fleet;
  /** This node's open push streams. */
  push: PushHub;
  metrics: ServerMetrics;
  enrollLimit: RateLimiter;
  /** Exposure, SLA windows, OpenVEX, tripwires; check-ins feed its host history. */
  compliance: ComplianceService;
  /** User-space levels per library build-id; check-ins report libraries and get their desired levels. */
  userspace?: UserspaceRepository;
}
