import { Type, type Static } from 'typebox';
import { isIP } from 'node:net';
import { LivegraftError, validator } from '@livegraft/protocol';
import { isVexAuthor } from './compliance/vex-author.ts';

export const DEFAULT_PORT = 8720;
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_DATA_DIR = './livegraft-data';
/** An hour: check-ins are a heartbeat and an update poll, not a push channel. */
export const DEFAULT_CHECKIN_INTERVAL_SEC = 3600;
/** A week; a longer interval would hide dead hosts for too long. */
export const MAX_CHECKIN_INTERVAL_SEC = 7 * 24 * 3600;

export const LogLevel = Type.Union([
  Type.Literal('fatal'),
  Type.Literal('error'),
  Type.Literal('warn'),
  Type.Literal('info'),
  Type.Literal('debug'),
  Type.Literal('trace'),
  Type.Literal('silent'),
]);
export type LogLevel = Static<typeof LogLevel>;

/** A secret given from outside (environment); the data dir files are used otherwise. */
const Secret = Type.String({ minLength: 16, maxLength: 256, pattern: '^[\\x21-\\x7e]+$' });

export const ConfigSchema = Type.Object(
  {
    dataDir: Type.String({ minLength: 1, maxLength: 4096 }),
    host: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Integer({ minimum: 0, maximum: 65535 }),
    checkinIntervalSec: Type.Integer({ minimum: 1, maximum: MAX_CHECKIN_INTERVAL_SEC }),
    logLevel: LogLevel,
    adminToken: Type.Optional(Secret),
    registrationKey: Type.Optional(Secret),
    /** postgres://user@host/db selects PostgreSQL (several server nodes may share it); absent = SQLite in dataDir. */
    database: Type.Optional(Type.String({ pattern: '^postgres(ql)?://', maxLength: 4096 })),
    dbPoolSize: Type.Optional(Type.Integer({ minimum: 1, maximum: 200 })),
    tlsCert: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    tlsKey: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** Pushed events carry a random delay within this window so hosts do not download at once. */
    pushSpreadSec: Type.Optional(Type.Integer({ minimum: 0, maximum: 86400 })),
    /** How often promotion rules are evaluated (they are also evaluated on check-in reports). */
    promotionIntervalSec: Type.Optional(Type.Integer({ minimum: 1, maximum: 86400 })),
    /** Enrolment rate limit per client IP: burst size and sustained rate. */
    enrollBurst: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000 })),
    enrollPerMinute: Type.Optional(Type.Integer({ minimum: 1, maximum: 1_000_000 })),
    /** A livepatch transition reported running longer than this halts the level's rollout. */
    stallSec: Type.Optional(Type.Integer({ minimum: 10, maximum: 86400 })),
    /** Directory of the online TUF keys (targets/snapshot/timestamp .json); default <dataDir>/keys. */
    tufKeysDir: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** N.root.json files to import at start, besides those in <dataDir>/tuf/roots. */
    tufRoots: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 4096 }), { maxItems: 1000 })),
    /** Tripwire alerts (exploit attempts blocked by live patches) are POSTed here as JSON. */
    alertWebhook: Type.Optional(Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2048 })),
    /** Reverse proxies (addresses or CIDRs) whose X-Forwarded-For and -Proto are believed; none by default. */
    trustProxy: Type.Optional(Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 100 })),
    /** Build jobs: a worker's lease lasts this long unless a heartbeat extends it. */
    jobLeaseSec: Type.Optional(Type.Integer({ minimum: 10, maximum: 86400 })),
    /** A directory of shipped fixes (one sub-directory with fix.json each) that submitted fixes must not repeat. */
    catalogueDir: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** The livegraft-agent .deb that GET /install.sh installs on hosts. */
    agentPackage: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
    /** OpenVEX documents' `author`: the organisation's IRI or email (default root@<this machine's name>). */
    vexAuthor: Type.Optional(Type.String({ minLength: 1, maxLength: 512 })),
  },
  { additionalProperties: false },
);
export type Config = Readonly<Static<typeof ConfigSchema>>;

const configValidator = validator(ConfigSchema, 'server configuration');

/** Fills defaults, validates once, and freezes: the rest of the server trusts Config. */
export function parseConfig(input: Partial<Record<keyof Config, unknown>>): Config {
  const defined = Object.fromEntries(Object.entries(input).filter(([, v]) => v !== undefined));
  const merged = {
    dataDir: DEFAULT_DATA_DIR,
    host: DEFAULT_HOST,
    port: DEFAULT_PORT,
    checkinIntervalSec: DEFAULT_CHECKIN_INTERVAL_SEC,
    logLevel: 'info',
    ...defined,
  };
  const config = configValidator.parse(merged);
  for (const p of config.trustProxy ?? []) checkProxyAddress(p);
  if (config.vexAuthor !== undefined && !isVexAuthor(config.vexAuthor)) {
    throw new LivegraftError(
      'CONFIG_INVALID',
      `--vex-author ${JSON.stringify(config.vexAuthor)}: not an IRI (https://example.org/security) or an email address (security@example.org); OpenVEX wants the organisation that vouches for the statements`,
    );
  }
  return Object.freeze(config);
}

/** An address, an address/prefix, or one of proxy-addr's names (loopback, linklocal, uniquelocal). */
function checkProxyAddress(p: string): void {
  if (p === 'loopback' || p === 'linklocal' || p === 'uniquelocal') return;
  const [addr = '', prefix, extra] = p.split('/');
  const family = isIP(addr);
  const bits = prefix === undefined ? 0 : Number(prefix);
  const ok =
    family !== 0 &&
    extra === undefined &&
    (prefix === undefined || (/^[0-9]{1,3}$/.test(prefix) && bits <= (family === 4 ? 32 : 128)));
  if (!ok) {
    throw new LivegraftError(
      'CONFIG_INVALID',
      `--trust-proxy ${p}: not an IP address or CIDR (e.g. 10.0.0.5, 10.0.0.0/24, fd00::/8, loopback)`,
    );
  }
}
