import type { FastifySchema, RouteOptions } from 'fastify';
import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import type { TSchema } from 'typebox';
import { ApiError } from '@livegraft/protocol';
import { guardRoleOf, type Role } from '../auth.ts';
import { SESSION_COOKIE } from '../dashboard/sessions.ts';
import { STATUS_OF_CODE } from '../errors.ts';
import { OPERATIONS, TAGS, type Answer, type OperationDoc } from './operations.ts';

declare module 'fastify' {
  interface FastifyContextConfig {
    /**
     * The JSON schema of a 2xx answer, for /openapi.json only: answers are
     * neither validated nor serialised with it, so it costs nothing per request.
     */
    answer?: TSchema;
  }
}

export const SECURITY_SCHEMES = {
  apiToken: {
    type: 'http',
    scheme: 'bearer',
    description:
      'An API token (`livegraft tokens create`, or the admin token file). Its role must reach the one the operation names: viewer < operator < admin; worker tokens reach only the worker routes.',
  },
  hostToken: {
    type: 'http',
    scheme: 'bearer',
    description: 'The host token an agent got at enrolment.',
  },
  session: {
    type: 'apiKey',
    in: 'cookie',
    name: SESSION_COOKIE,
    description: `The dashboard's session cookie, set by POST /api/v1/session (named __Host-${SESSION_COOKIE} over HTTPS). It stands for the API token it signed in with, and is read only when no Authorization header is sent.`,
  },
  csrf: {
    type: 'apiKey',
    in: 'header',
    name: 'x-csrf-token',
    description: 'The CSRF token GET /api/v1/session gives: a change made with the session cookie needs it too.',
  },
} as const;

type Requirement = Partial<Record<keyof typeof SECURITY_SCHEMES, string[]>>;

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** The security requirements a guard role means, as auth.ts checks them (any one of the list suffices). */
export function securityOf(role: Role, method: string): Requirement[] {
  const session: Requirement = SAFE_METHODS.has(method) ? { session: [] } : { session: [], csrf: [] };
  if (role === 'host') return [{ hostToken: [] }];
  const api: Requirement[] = [{ apiToken: [] }, session];
  if (role === 'host-or-viewer' || role === 'host-or-admin') return [{ hostToken: [] }, ...api];
  return api;
}

/** Routes without a guard hook: what the table says they check themselves (`{}` makes credentials optional). */
function unguardedSecurity(auth: OperationDoc['auth']): Requirement[] {
  if (auth === 'session') return [{ session: [], csrf: [] }, {}];
  if (auth === 'optional') return [{ apiToken: [] }, { session: [] }, {}];
  return [];
}

function whoMay(role: Role): string {
  switch (role) {
    case 'host':
      return 'a host token';
    case 'host-or-viewer':
    case 'host-or-admin':
      return 'a host token, or an API token (or dashboard session) with the viewer role or higher';
    case 'worker':
      return 'an API token with the worker role';
    case 'admin':
      return 'an API token (or dashboard session) with the admin role';
    default:
      return `an API token (or dashboard session) with the ${role} role or higher`;
  }
}

/** What an operation's route says about itself, read from its registration. */
export interface RouteFacts {
  method: string;
  url: string;
  role: Role | undefined;
  hasParams: boolean;
  hasBody: boolean;
  answer: TSchema | undefined;
  existingSummary: string | undefined;
}

export function routeFacts(
  route: Pick<RouteOptions, 'method' | 'url' | 'schema' | 'config' | 'onRequest'>,
): RouteFacts {
  const method = Array.isArray(route.method) ? String(route.method[0]) : String(route.method);
  const schema = (route.schema ?? {}) as Record<string, unknown>;
  return {
    method,
    url: route.url,
    role: guardRoleOf(route.onRequest),
    hasParams: schema['params'] !== undefined || schema['querystring'] !== undefined || schema['headers'] !== undefined,
    hasBody: schema['body'] !== undefined,
    answer: (route.config as { answer?: TSchema } | undefined)?.answer,
    existingSummary: typeof schema['summary'] === 'string' ? schema['summary'] : undefined,
  };
}

export const operationKey = (method: string, url: string): string => `${method} ${url}`;

/** e.g. `GET /api/v1/hosts/:id/vex` -> `getHostsByIdVex`. */
export function operationIdOf(method: string, url: string): string {
  const words = url
    .replace(/^\/api\/v[0-9]+/, '')
    .split('/')
    .filter((s) => s !== '')
    .flatMap((s) => (s.startsWith(':') ? ['by', s.slice(1)] : s.split(/[^A-Za-z0-9]+/)))
    .filter((w) => w !== '');
  const tail = words.map((w) => w.charAt(0).toUpperCase() + w.slice(1)).join('');
  return `${method.toLowerCase()}${tail === '' ? 'Root' : tail}`;
}

/** The error codes an operation can answer with: implied by its schemas and guard, plus the table's. */
export function errorCodesOf(facts: RouteFacts, doc: OperationDoc | undefined): string[] {
  const codes: string[] = [];
  if (facts.hasParams || facts.hasBody) codes.push('VALIDATION_FAILED');
  if (facts.hasBody) codes.push('BODY_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE');
  if (facts.role !== undefined) {
    codes.push('AUTH_REQUIRED', 'AUTH_INVALID', 'FORBIDDEN');
    if (facts.role !== 'host' && !SAFE_METHODS.has(facts.method)) codes.push('CSRF_INVALID');
  }
  codes.push(...(doc?.errors ?? []));
  return [...new Set(codes)];
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Bad request',
  401: 'Not authenticated',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Conflict',
  413: 'Body too large',
  415: 'Unsupported media type',
  429: 'Too many requests',
};

function errorResponses(codes: string[]): Record<string, unknown> {
  const byStatus = new Map<number, string[]>();
  for (const code of codes) {
    // An unknown code answers 500, which is no 4xx to list (the OpenAPI test finds such a code in the table).
    const status = STATUS_OF_CODE[code];
    if (status === undefined) continue;
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  const out: Record<string, unknown> = {};
  for (const [status, list] of [...byStatus].sort((a, b) => a[0] - b[0])) {
    out[String(status)] = {
      description: `${STATUS_TEXT[status] ?? 'Error'}: code ${list.join(', ')}`,
      ...(status === 401 ? { headers: { 'www-authenticate': { schema: { type: 'string', const: 'Bearer' } } } } : {}),
      content: { 'application/json': { schema: { $ref: '#/components/schemas/ApiError' } } },
    };
  }
  return out;
}

/** A 2xx answer in the form @fastify/swagger reads from `schema.response`. */
function responseSchema(a: Answer, fallback: TSchema | undefined): Record<string, unknown> {
  const desc = { 'x-response-description': a.description, description: a.description };
  if (a.type === 'none') return { ...desc, type: 'null' };
  const schema = a.schema ?? fallback;
  const type = a.type ?? 'application/json';
  // Without one the answer is described in words only (the OpenAPI test finds it).
  if (schema === undefined) return desc;
  return { ...desc, content: { [type]: { schema }, ...mapValues(a.also ?? {}, (s) => ({ schema: s })) } };
}

function mapValues<T, U>(o: Record<string, T>, f: (v: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, f(v)]));
}

/**
 * The options @fastify/swagger builds /openapi.json with: each route's own
 * schemas, its guard's security, and the operations table's words.
 */
export function swaggerOptions(version: string): FastifyDynamicSwaggerOptions {
  // What transform learns per route and @fastify/swagger has no field for, added by transformObject.
  const extras = new Map<string, { errors: Record<string, unknown>; role: Role | undefined }>();
  return {
    convertConstToEnum: false,
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Livegraft patch server',
        version,
        description:
          'Live patching for the Linux kernel: build, sign, roll out, apply live, prove. Errors answer `{code, message, details?}` with the status each code has.',
        license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
      },
      servers: [{ url: '/', description: 'the server this document came from' }],
      tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
      components: {
        securitySchemes: SECURITY_SCHEMES,
        schemas: { ApiError: { ...(ApiError as unknown as Record<string, unknown>), title: 'ApiError' } },
      },
    },
    transform({ schema, url, route }) {
      const facts = routeFacts(route);
      const doc = OPERATIONS[operationKey(facts.method, url)];
      const own: FastifySchema = schema ?? {};
      if (doc?.hidden !== undefined) return { schema: { ...own, hide: true }, url };
      const operationId = operationIdOf(facts.method, url);
      const answers = doc?.answers ?? { 200: { description: 'OK' } };
      const role = facts.role;
      const security = role !== undefined ? securityOf(role, facts.method) : unguardedSecurity(doc?.auth);
      extras.set(operationId, { errors: errorResponses(errorCodesOf(facts, doc)), role });
      const needs = role === undefined ? undefined : `Needs ${whoMay(role)}.`;
      const description = [doc?.description, needs].filter((s) => s !== undefined).join(' ');
      return {
        url,
        schema: {
          ...own,
          operationId,
          summary: doc?.summary ?? facts.existingSummary ?? `${facts.method} ${url}`,
          tags: doc === undefined ? (own.tags ?? []) : [doc.tag],
          ...(description === '' ? {} : { description }),
          security,
          response: mapValues(answers as Record<string, Answer>, (a) => responseSchema(a, facts.answer)),
        },
      };
    },
    transformObject(documentObject) {
      if (!('openapiObject' in documentObject)) return documentObject.swaggerObject;
      const { openapiObject } = documentObject;
      for (const item of Object.values(openapiObject.paths ?? {}) as Record<string, unknown>[]) {
        for (const op of Object.values(item) as Record<string, unknown>[]) {
          const more = extras.get(String(op['operationId']));
          if (more === undefined) continue;
          op['responses'] = { ...(op['responses'] as Record<string, unknown>), ...more.errors };
          // The guard's role, for clients and tests; absent on routes without a guard.
          if (more.role !== undefined) op['x-livegraft-role'] = more.role;
        }
      }
      return openapiObject;
    },
  };
}
