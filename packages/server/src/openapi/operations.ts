import { Type, type TSchema } from 'typebox';
import {
  FeedRecord,
  HostRecord,
  HaltRecord,
  PinRecord,
  RegistrationKeyCreated,
  RegistrationKeyRecord,
  TokenCreated,
  TokenRecord,
  AuditEntry,
  EnrollResponse,
  CheckinResponse,
  HostExposure,
  FleetExposure,
  CveHosts,
  SlaPolicy,
  ExposureWindow,
  ComplianceReport,
  TripwireReportResponse,
  TripwireRecord,
} from '@livegraft/protocol';
import { Health, ModuleUpload, Ok, Promoted, Removed, Revoked, SessionInfo, VexDocument } from './answers.ts';

/**
 * The OpenAPI document's word on each route, keyed by "METHOD /url" as the
 * route registers (Fastify's `:param` form, API prefix included). The route's
 * own schemas give the parameters, the body and (`config.answer`) the JSON
 * answer; its guard hook gives the security and the 401/403 answers; this
 * table adds what code cannot tell: a summary, a tag, the other answers and
 * the error codes the handler (or the service behind it) throws.
 *
 * A route without an entry fails the OpenAPI test: document a new route here.
 */

export const TAGS = {
  hosts: 'Enrolment, check-in and the hosts of the fleet',
  feeds: 'Feeds (release channels), their levels and promotion',
  levels: 'Live patch modules and the levels (patches) built from them',
  rollouts: 'Halts, rollbacks and pins that steer a rollout',
  tuf: 'The signed TUF repository hosts update from (public: the signatures are the trust)',
  compliance: 'Exposure to CVEs, SLA policy, windows and compliance reports',
  vex: 'OpenVEX documents',
  tripwires: 'Tripwire hits reported by hosts',
  pipeline: 'Submitted fixes, the build pipeline and its workers',
  tokens: 'API tokens, registration keys and the audit log',
  session: 'Dashboard sign-in (cookie sessions) and its live activity',
  userspace: 'User-space (library) live patches',
  install: 'The install script and the agent package',
  ops: 'Health, metrics and this document',
} as const;
export type Tag = keyof typeof TAGS;

/** One answer: JSON with `schema` (default: the route's `config.answer`), or another media type. */
export interface Answer {
  description: string;
  /** The media type (default application/json); `none` for an answer without a body. */
  type?: string;
  schema?: TSchema;
  /** Other media types the same answer may come in (by a query parameter). */
  also?: Record<string, TSchema>;
}

export interface OperationDoc {
  summary: string;
  tag: Tag;
  description?: string;
  /** The 2xx answers by status; default `{200: {description: 'OK'}}` with the route's `config.answer`. */
  answers?: Record<number, Answer>;
  /**
   * Error codes the handler throws beyond those its schemas (VALIDATION_FAILED)
   * and its guard (AUTH_REQUIRED, AUTH_INVALID, FORBIDDEN, CSRF_INVALID) imply;
   * each is answered with the status errors.ts gives it.
   */
  errors?: string[];
  /**
   * For a route no guard hook protects: `public`; `session` (it reads the
   * dashboard cookie itself); `optional` (it answers without credentials too,
   * and says more with them).
   */
  auth?: 'public' | 'session' | 'optional';
  /** Left out of the document, saying why (a framework path, not an API). */
  hidden?: string;
}

const json = (description: string, schema?: TSchema): Answer =>
  schema === undefined ? { description } : { description, schema };
const noBody = (description: string): Answer => ({ description, type: 'none' });
const text = (type: string, description: string): Answer => ({ description, type, schema: Type.String() });
const bytes = (type: string, description: string): Answer => ({
  description,
  type,
  schema: Type.String({ contentMediaType: type }),
});
const sse = (description: string): Answer => ({ description, type: 'text/event-stream', schema: Type.String() });

const HOST = ['HOST_NOT_FOUND'];
const FEED = ['FEED_NOT_FOUND'];
const LEVEL = ['LEVEL_NOT_FOUND'];
const MODULE_PROBLEMS = [
  'MODULE_HASH_MISMATCH',
  'MODULE_MALFORMED',
  'MODULE_NOT_LIVEPATCH',
  'MODULE_SIZE_MISMATCH',
  'MANIFEST_MISMATCH',
  'MODULE_NOT_UPLOADED',
];

export const OPERATIONS: Readonly<Record<string, OperationDoc>> = {
  // ops
  'GET /healthz': {
    summary: 'Liveness: the process answers',
    tag: 'ops',
    auth: 'public',
    answers: { 200: json('OK', Health) },
  },
  'GET /metrics': {
    summary: 'Prometheus metrics',
    tag: 'ops',
    answers: { 200: text('text/plain', 'Prometheus text exposition format') },
  },
  'GET /openapi.json': {
    summary: 'This OpenAPI document',
    tag: 'ops',
    auth: 'public',
    answers: {
      200: json('an OpenAPI 3.1 document', Type.Object({ openapi: Type.String() }, { additionalProperties: true })),
    },
  },

  // The dashboard's files.
  'GET /': {
    summary: 'The web dashboard',
    tag: 'session',
    auth: 'public',
    answers: { 200: text('text/html', 'the dashboard page (503 with a plain-text note when it is not built)') },
  },
  'GET /*': { summary: 'Dashboard files', tag: 'session', hidden: 'the dashboard’s static files and client routes' },

  // tuf
  'GET /tuf/metadata/:file': {
    summary: 'A TUF metadata file (root, timestamp, snapshot, targets)',
    tag: 'tuf',
    auth: 'public',
    answers: { 200: json('signed TUF metadata', Type.Object({}, { additionalProperties: true })) },
    errors: ['NOT_FOUND'],
  },
  'GET /tuf/targets/:kernelId/:level/:file': {
    summary: 'A kernel live patch module, as a TUF target',
    tag: 'tuf',
    auth: 'public',
    answers: { 200: bytes('application/octet-stream', 'the module') },
    errors: ['NOT_FOUND', 'MODULE_NOT_FOUND'],
  },
  'GET /tuf/targets/userspace/:buildId/:level/:file': {
    summary: 'A user-space patch object, as a TUF target',
    tag: 'tuf',
    auth: 'public',
    answers: { 200: bytes('application/octet-stream', 'the patch object') },
    errors: ['NOT_FOUND', 'MODULE_NOT_FOUND'],
  },

  // install
  'GET /install.sh': {
    summary: 'The script that installs the agent package and enrols the host',
    tag: 'install',
    auth: 'public',
    answers: { 200: text('text/x-shellscript', 'a POSIX shell script') },
    errors: ['NOT_FOUND', 'BAD_REQUEST'],
  },
  'GET /install/livegraft-agent.deb': {
    summary: 'The agent’s Debian package',
    tag: 'install',
    auth: 'public',
    answers: { 200: bytes('application/vnd.debian.binary-package', 'the livegraft-agent package') },
    errors: ['NOT_FOUND'],
  },

  // levels
  'PUT /api/v1/modules/:sha256': {
    summary: 'Upload a live patch module (idempotent)',
    tag: 'levels',
    answers: { 200: json('stored already', ModuleUpload), 201: json('stored', ModuleUpload) },
    errors: [
      'MODULE_HASH_MISMATCH',
      'MODULE_MALFORMED',
      'MODULE_NOT_LIVEPATCH',
      'BODY_TOO_LARGE',
      'UNSUPPORTED_MEDIA_TYPE',
    ],
  },
  'GET /api/v1/modules/:sha256': {
    summary: 'Download a module',
    tag: 'levels',
    answers: { 200: bytes('application/octet-stream', 'the module') },
    errors: ['MODULE_NOT_FOUND'],
  },
  'POST /api/v1/patches': {
    summary: 'Record a level (manifest of an uploaded module), published or not',
    tag: 'levels',
    answers: { 200: json('the same manifest was recorded already'), 201: json('recorded') },
    errors: [...MODULE_PROBLEMS, 'LEVEL_EXISTS'],
  },
  'GET /api/v1/patches': { summary: 'Levels, newest first', tag: 'levels' },
  'POST /api/v1/kernels/:kernelId/levels/:level/publish': {
    summary: 'Publish a recorded level (sign it into the TUF repository)',
    tag: 'levels',
    errors: LEVEL,
  },
  'GET /api/v1/kernels/:kernelId/latest': {
    summary: 'The newest published level of a kernel build',
    tag: 'levels',
    errors: ['KERNEL_UNSUPPORTED'],
  },
  'GET /api/v1/kernels/:kernelId/levels/:level': { summary: 'One published level', tag: 'levels', errors: LEVEL },
  'PUT /api/v1/kernels/:kernelId/levels/:level/validation': {
    summary: 'Override the validation verdict of a level',
    tag: 'pipeline',
    errors: [...LEVEL, 'NOT_VALIDATED'],
  },

  // hosts
  'POST /api/v1/hosts/enroll': {
    summary: 'Enrol a host with a registration key',
    tag: 'hosts',
    auth: 'public',
    description: 'The registration key in the body is the credential; the answer holds the host token.',
    answers: { 201: json('enrolled', EnrollResponse) },
    errors: ['REGISTRATION_KEY_INVALID', 'RATE_LIMITED'],
  },
  'POST /api/v1/hosts/checkin': {
    summary: 'Report the host’s state; get the level it should run',
    tag: 'hosts',
    answers: { 200: json('the desired level', CheckinResponse) },
  },
  'GET /api/v1/hosts': { summary: 'Hosts, filtered by feed, tag or kernel', tag: 'hosts' },
  'GET /api/v1/hosts/:id': { summary: 'One host', tag: 'hosts', errors: HOST },
  'PATCH /api/v1/hosts/:id': {
    summary: 'Move a host to a feed, set its tags or auto-update',
    tag: 'hosts',
    answers: { 200: json('the host as it is now', HostRecord) },
    errors: [...HOST, ...FEED],
  },
  'POST /api/v1/hosts/:id/revoke': {
    summary: 'Revoke a host’s token',
    tag: 'hosts',
    answers: { 200: json('revoked', Revoked) },
    errors: HOST,
  },
  'GET /api/v1/events/stream': {
    summary: 'Server-sent desired-level events for the calling host',
    tag: 'hosts',
    answers: { 200: sse('an event stream') },
    errors: ['STREAM_LIMIT'],
  },

  // feeds
  'GET /api/v1/feeds': { summary: 'Feeds', tag: 'feeds', answers: { 200: json('OK', Type.Array(FeedRecord)) } },
  'POST /api/v1/feeds': {
    summary: 'Create a feed',
    tag: 'feeds',
    answers: { 201: json('created', FeedRecord) },
    errors: ['FEED_EXISTS', ...FEED, 'BAD_REQUEST'],
  },
  'GET /api/v1/feeds/:name': {
    summary: 'One feed',
    tag: 'feeds',
    answers: { 200: json('OK', FeedRecord) },
    errors: FEED,
  },
  'PATCH /api/v1/feeds/:name': {
    summary: 'Change a feed’s promotion, windows or rules',
    tag: 'feeds',
    answers: { 200: json('the feed as it is now', FeedRecord) },
    errors: [...FEED, 'BAD_REQUEST'],
  },
  'DELETE /api/v1/feeds/:name': {
    summary: 'Delete an empty feed',
    tag: 'feeds',
    answers: { 204: noBody('deleted') },
    errors: [...FEED, 'FEED_IN_USE'],
  },
  'PUT /api/v1/feeds/:name/levels/:kernelId': {
    summary: 'Set the level a feed serves for a kernel build',
    tag: 'feeds',
    answers: { 200: json('the feed as it is now', FeedRecord) },
    errors: [...FEED, ...LEVEL, 'DOWNGRADE_REFUSED', 'NOT_VALIDATED'],
  },
  'POST /api/v1/feeds/:name/promote': {
    summary: 'Promote a feed’s levels to the next feed now',
    tag: 'feeds',
    answers: { 200: json('what was promoted', Promoted) },
    errors: [...FEED, 'BAD_REQUEST'],
  },

  // rollouts
  'POST /api/v1/rollback': {
    summary: 'Roll a feed or a tag back to an earlier level',
    tag: 'rollouts',
    answers: { 200: json('rolled back', Ok) },
    errors: [...FEED, ...LEVEL],
  },
  'GET /api/v1/halts': {
    summary: 'Halted levels',
    tag: 'rollouts',
    answers: { 200: json('OK', Type.Array(HaltRecord)) },
  },
  'POST /api/v1/halts': {
    summary: 'Halt a level’s rollout',
    tag: 'rollouts',
    answers: { 201: json('halted', HaltRecord) },
    errors: [...LEVEL, 'ALREADY_HALTED'],
  },
  'DELETE /api/v1/halts/:kernelId/:level': {
    summary: 'Resume a halted level',
    tag: 'rollouts',
    answers: { 204: noBody('resumed') },
    errors: ['NOT_FOUND'],
  },
  'PUT /api/v1/feeds/:subject/pin': {
    summary: 'Pin a feed to a level or a cut-off date',
    tag: 'rollouts',
    answers: { 200: json('the pin', PinRecord) },
    errors: FEED,
  },
  'DELETE /api/v1/feeds/:subject/pin': {
    summary: 'Unpin a feed',
    tag: 'rollouts',
    answers: { 200: json('pins removed', Removed) },
  },
  'PUT /api/v1/hosts/:subject/pin': {
    summary: 'Pin a host to a level or a cut-off date',
    tag: 'rollouts',
    answers: { 200: json('the pin', PinRecord) },
    errors: HOST,
  },
  'DELETE /api/v1/hosts/:subject/pin': {
    summary: 'Unpin a host',
    tag: 'rollouts',
    answers: { 200: json('pins removed', Removed) },
  },
  'PUT /api/v1/tags/:subject/pin': {
    summary: 'Pin the hosts with a tag to a level or a cut-off date',
    tag: 'rollouts',
    answers: { 200: json('the pin', PinRecord) },
  },
  'DELETE /api/v1/tags/:subject/pin': {
    summary: 'Unpin a tag',
    tag: 'rollouts',
    answers: { 200: json('pins removed', Removed) },
  },
  'GET /api/v1/pins': { summary: 'Pins', tag: 'rollouts', answers: { 200: json('OK', Type.Array(PinRecord)) } },

  // tokens
  'POST /api/v1/tokens': {
    summary: 'Create an API token (shown once)',
    tag: 'tokens',
    answers: { 201: json('created; the token is in the answer only', TokenCreated) },
  },
  'GET /api/v1/tokens': { summary: 'API tokens', tag: 'tokens', answers: { 200: json('OK', Type.Array(TokenRecord)) } },
  'POST /api/v1/tokens/:id/revoke': {
    summary: 'Revoke an API token',
    tag: 'tokens',
    answers: { 200: json('revoked', Revoked) },
    errors: ['NOT_FOUND'],
  },
  'POST /api/v1/registration-keys': {
    summary: 'Create a registration key (shown once)',
    tag: 'tokens',
    answers: { 201: json('created; the key is in the answer only', RegistrationKeyCreated) },
    errors: FEED,
  },
  'GET /api/v1/registration-keys': {
    summary: 'Registration keys',
    tag: 'tokens',
    answers: { 200: json('OK', Type.Array(RegistrationKeyRecord)) },
  },
  'POST /api/v1/registration-keys/:id/revoke': {
    summary: 'Revoke a registration key',
    tag: 'tokens',
    answers: { 200: json('revoked', Revoked) },
    errors: ['NOT_FOUND'],
  },
  'GET /api/v1/audit': {
    summary: 'The audit log',
    tag: 'tokens',
    answers: { 200: json('OK', Type.Array(AuditEntry)) },
  },

  // compliance
  'GET /api/v1/hosts/:id/exposure': {
    summary: 'CVEs a host is exposed to',
    tag: 'compliance',
    answers: { 200: json('OK', HostExposure) },
    errors: HOST,
  },
  'GET /api/v1/exposure': {
    summary: 'The fleet’s exposure',
    tag: 'compliance',
    answers: { 200: json('OK', FleetExposure) },
  },
  'GET /api/v1/cves/:id': {
    summary: 'Hosts exposed to one CVE',
    tag: 'compliance',
    answers: { 200: json('OK', CveHosts) },
  },
  'GET /api/v1/compliance/policy': {
    summary: 'The SLA policy',
    tag: 'compliance',
    answers: { 200: json('OK', SlaPolicy) },
  },
  'PUT /api/v1/compliance/policy': {
    summary: 'Set the SLA policy',
    tag: 'compliance',
    answers: { 200: json('the policy', SlaPolicy) },
  },
  'GET /api/v1/hosts/:id/windows': {
    summary: 'A host’s exposure windows',
    tag: 'compliance',
    answers: { 200: json('OK', Type.Array(ExposureWindow)) },
    errors: HOST,
  },
  'GET /api/v1/reports/compliance': {
    summary: 'The compliance report (JSON, CSV or PDF)',
    tag: 'compliance',
    answers: {
      200: {
        description: 'the report in the asked format (format=json, csv or pdf)',
        schema: ComplianceReport,
        also: { 'text/csv': Type.String(), 'application/pdf': Type.String({ contentMediaType: 'application/pdf' }) },
      },
    },
  },
  'GET /api/v1/coverage': { summary: 'Which fixes cover which CVEs on which kernel builds', tag: 'compliance' },

  // vex
  'GET /api/v1/hosts/:id/vex': {
    summary: 'An OpenVEX document for one host',
    tag: 'vex',
    answers: { 200: json('OK', VexDocument) },
    errors: HOST,
  },
  'GET /api/v1/vex': {
    summary: 'An OpenVEX document for the fleet',
    tag: 'vex',
    answers: { 200: json('OK', VexDocument) },
  },

  // tripwires
  'POST /api/v1/hosts/tripwire': {
    summary: 'Report tripwire hits (a host)',
    tag: 'tripwires',
    answers: { 200: json('recorded', TripwireReportResponse) },
    errors: ['RATE_LIMITED'],
  },
  'GET /api/v1/tripwires': {
    summary: 'Tripwire hits',
    tag: 'tripwires',
    answers: { 200: json('OK', Type.Array(TripwireRecord)) },
  },
  'GET /api/v1/hosts/:id/tripwires': {
    summary: 'A host’s tripwire hits',
    tag: 'tripwires',
    answers: { 200: json('OK', Type.Array(TripwireRecord)) },
  },

  // session (dashboard)
  'POST /api/v1/session': {
    summary: 'Sign in with an API token (sets the session cookie)',
    tag: 'session',
    auth: 'public',
    description: 'The API token in the body is the credential; the answer sets the HttpOnly session cookie.',
    answers: { 200: json('signed in', SessionInfo) },
    errors: ['AUTH_INVALID', 'FORBIDDEN', 'RATE_LIMITED'],
  },
  'GET /api/v1/session': { summary: 'Who is signed in', tag: 'session', answers: { 200: json('OK', SessionInfo) } },
  'DELETE /api/v1/session': {
    summary: 'Sign out',
    tag: 'session',
    auth: 'session',
    answers: { 204: noBody('signed out (also without a session)') },
    errors: ['CSRF_INVALID'],
  },
  'GET /api/v1/dashboard/session': {
    summary: 'Who is signed in, if anyone (the dashboard asks at every page load)',
    tag: 'session',
    auth: 'optional',
    answers: {
      200: json(
        'the session, or `{session: null}` when signed out',
        Type.Object({ session: Type.Union([SessionInfo, Type.Null()]) }),
      ),
    },
  },
  'GET /api/v1/dashboard/overview': { summary: 'The dashboard’s fleet overview', tag: 'session' },
  'GET /api/v1/dashboard/compliance': { summary: 'The dashboard’s compliance summary', tag: 'session' },
  'GET /api/v1/dashboard/cves': { summary: 'The dashboard’s page of open CVEs', tag: 'session' },
  'GET /api/v1/dashboard/hosts': {
    summary: 'The dashboard’s page of hosts (searched, filtered and sorted on the server)',
    tag: 'session',
  },
  'GET /api/v1/dashboard/rollouts': { summary: 'The dashboard’s rollout counts per feed and kernel', tag: 'session' },
  'GET /api/v1/dashboard/activity': { summary: 'The dashboard’s page of fleet activity', tag: 'session' },
  'GET /api/v1/dashboard/hosts/:id/history': {
    summary: 'The dashboard’s history of one host',
    tag: 'session',
    errors: HOST,
  },
  'GET /api/v1/activity/stream': {
    summary: 'Server-sent fleet activity for the dashboard',
    tag: 'session',
    answers: { 200: sse('an event stream') },
    errors: ['STREAM_LIMIT'],
  },

  // pipeline
  'GET /api/v1/fleet/kernels': { summary: 'Kernel builds the fleet runs', tag: 'pipeline' },
  'POST /api/v1/fixes': {
    summary: 'Submit a fix',
    tag: 'pipeline',
    answers: { 201: json('submitted and planned') },
    errors: ['FIX_INVALID', 'PATCH_INVALID', 'FIX_NO_CVE', 'FIX_DUPLICATE', 'BODY_TOO_LARGE'],
  },
  'GET /api/v1/fixes': { summary: 'Submitted fixes', tag: 'pipeline' },
  'GET /api/v1/fixes/:id': { summary: 'One fix and its plan', tag: 'pipeline', errors: ['FIX_NOT_FOUND'] },
  'POST /api/v1/jobs/claim': {
    summary: 'Claim the next build job (a worker)',
    tag: 'pipeline',
    answers: { 200: json('a job and its lease'), 204: noBody('no job is waiting') },
  },
  'POST /api/v1/jobs/:id/heartbeat': {
    summary: 'Extend a held lease and report the phase',
    tag: 'pipeline',
    errors: ['JOB_NOT_FOUND', 'LEASE_LOST'],
  },
  'GET /api/v1/jobs/:id/fixes/:fixId': {
    summary: 'A fix of the held job',
    tag: 'pipeline',
    errors: ['JOB_NOT_FOUND', 'LEASE_LOST', 'FIX_NOT_FOUND'],
  },
  'GET /api/v1/jobs/:id/previous/manifest': {
    summary: 'Manifest of the level the held job replaces',
    tag: 'pipeline',
    errors: ['JOB_NOT_FOUND', 'LEASE_LOST', ...LEVEL],
  },
  'GET /api/v1/jobs/:id/previous/module': {
    summary: 'Module of the level the held job replaces',
    tag: 'pipeline',
    answers: { 200: bytes('application/octet-stream', 'the module') },
    errors: ['JOB_NOT_FOUND', 'LEASE_LOST', ...LEVEL, 'MODULE_NOT_FOUND'],
  },
  'POST /api/v1/jobs/:id/result': {
    summary: 'Send the outcome of the held job',
    tag: 'pipeline',
    errors: ['JOB_NOT_FOUND', 'LEASE_LOST', ...MODULE_PROBLEMS, 'LEVEL_EXISTS', 'BODY_TOO_LARGE'],
  },
  'GET /api/v1/jobs': { summary: 'Build jobs, newest fix first', tag: 'pipeline' },
  'GET /api/v1/jobs/:id': { summary: 'One build job', tag: 'pipeline', errors: ['JOB_NOT_FOUND'] },
  'GET /api/v1/jobs/:id/log': {
    summary: 'A job’s build log',
    tag: 'pipeline',
    answers: { 200: text('text/plain', 'the log') },
    errors: ['JOB_NOT_FOUND', 'NOT_FOUND'],
  },
  'GET /api/v1/jobs/:id/console': {
    summary: 'A job’s validation console',
    tag: 'pipeline',
    answers: { 200: text('text/plain', 'the console output') },
    errors: ['JOB_NOT_FOUND', 'NOT_FOUND'],
  },

  // userspace
  'POST /api/v1/userspace/levels': {
    summary: 'Record a user-space level',
    tag: 'userspace',
    answers: { 200: json('the same level was recorded already'), 201: json('recorded') },
    errors: ['MANIFEST_MISMATCH', 'MODULE_NOT_UPLOADED', 'LEVEL_EXISTS', ...LEVEL],
  },
  'GET /api/v1/userspace/levels': { summary: 'User-space levels', tag: 'userspace' },
  'POST /api/v1/userspace/levels/:buildId/:level/publish': {
    summary: 'Publish a user-space level',
    tag: 'userspace',
    errors: LEVEL,
  },
  'POST /api/v1/userspace/levels/:buildId/:level/halt': {
    summary: 'Halt a user-space level',
    tag: 'userspace',
    errors: LEVEL,
  },
  'DELETE /api/v1/userspace/levels/:buildId/:level/halt': {
    summary: 'Resume a halted user-space level',
    tag: 'userspace',
    errors: LEVEL,
  },
  'PUT /api/v1/hosts/:id/userspace-pins/:buildId': {
    summary: 'Pin a host’s library to a user-space level',
    tag: 'userspace',
    errors: [...HOST, ...LEVEL],
  },
  'DELETE /api/v1/hosts/:id/userspace-pins/:buildId': { summary: 'Unpin a host’s library', tag: 'userspace' },
  'GET /api/v1/userspace/feeds': { summary: 'The user-space levels each feed serves', tag: 'userspace' },
  'PUT /api/v1/userspace/feeds/:feed/levels/:buildId': {
    summary: 'Set the user-space level a feed serves for a library build',
    tag: 'userspace',
    errors: [...FEED, ...LEVEL],
  },
  'POST /api/v1/userspace/feeds/:feed/promote': {
    summary: 'Promote a feed’s user-space levels to the next feed now',
    tag: 'userspace',
    errors: [...FEED, 'BAD_REQUEST'],
  },
  'GET /api/v1/hosts/:id/userspace': {
    summary: 'A host’s patched libraries',
    tag: 'userspace',
    errors: HOST,
  },
};
