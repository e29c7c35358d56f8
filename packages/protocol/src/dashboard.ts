import { Type, type Static } from 'typebox';
import { ApplyResult } from './api.ts';
import { ComplianceReport, SeverityCounts, Severity } from './compliance.ts';
import { HOST_STATUSES } from './dashboard-rules.ts';
import { ApiRole, AuditEntry } from './fleet.ts';

/**
 * What the dashboard's own endpoints (under /api/v1/dashboard) answer: the
 * summaries its pages show, small whatever the fleet's size.
 */

const Count = Type.Integer({ minimum: 0 });

/** One count per host status (see dashboard-rules.ts HOST_STATUSES); they add up to `total`. */
export const HostStatusCounts = Type.Object({
  total: Count,
  stale: Count,
  failed: Count,
  attention: Count,
  unsupported: Count,
  behind: Count,
  held: Count,
  patched: Count,
  unpatched: Count,
});
export type HostStatusCounts = Static<typeof HostStatusCounts>;

/** GET /api/v1/dashboard/overview */
export const DashboardOverview = Type.Object({
  generatedAt: Type.String(),
  checkinIntervalSec: Type.Integer(),
  hosts: HostStatusCounts,
  /** Null when the role may not read compliance data. */
  exposure: Type.Union([
    Type.Object({
      hosts: Count,
      unevaluated: Count,
      /** Open (host, CVE) exposures by severity; the severities add up to `total`. */
      counts: SeverityCounts,
      hostsExposed: SeverityCounts,
      mitigated: Count,
    }),
    Type.Null(),
  ]),
});
export type DashboardOverview = Static<typeof DashboardOverview>;

export const HistorySeries = Type.Object({
  label: Type.String(),
  /** The severities counted in it. */
  severities: Type.Array(Severity),
  points: Type.Array(Type.Object({ t: Type.String(), v: Count })),
});
export type HistorySeries = Static<typeof HistorySeries>;

/** GET /api/v1/dashboard/compliance: the report's summary and the open-window history, without the rows. */
export const DashboardCompliance = Type.Object({
  generatedAt: Type.String(),
  summary: ComplianceReport.properties.summary,
  historyDays: Type.Integer(),
  /** Open exposure windows under an SLA at the end of each day, by severity group. */
  history: Type.Array(HistorySeries),
});
export type DashboardCompliance = Static<typeof DashboardCompliance>;

/** One apply (or rollback, unload, boot re-apply) a host reported, as recorded when it arrived. */
export const ApplyRecord = Type.Intersect([
  Type.Object({ hostId: Type.String(), hostname: Type.String(), kernelId: Type.String() }),
  ApplyResult,
]);
export type ApplyRecord = Static<typeof ApplyRecord>;

export const ActivityItem = Type.Union([
  Type.Object({
    kind: Type.Literal('audit'),
    at: Type.String(),
    entry: AuditEntry,
    /** A readable name for the target (token name, hostname, key name); null when none is known. */
    targetName: Type.Union([Type.String(), Type.Null()]),
  }),
  Type.Object({ kind: Type.Literal('apply'), at: Type.String(), apply: ApplyRecord }),
  Type.Object({
    kind: Type.Literal('tripwire'),
    at: Type.String(),
    hostId: Type.String(),
    hostname: Type.String(),
    cve: Type.String(),
    comm: Type.String(),
    pid: Type.Integer(),
    level: Type.Union([Type.Integer(), Type.Null()]),
  }),
]);
export type ActivityItem = Static<typeof ActivityItem>;

export const MAX_ACTIVITY_ITEMS = 100;
export const ActivityQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_ACTIVITY_ITEMS })) },
  { additionalProperties: false },
);

/** GET /api/v1/dashboard/activity: audit entries, applies and tripwire hits, newest first. */
export const DashboardActivity = Type.Object({ items: Type.Array(ActivityItem) });
export type DashboardActivity = Static<typeof DashboardActivity>;

export const MAX_APPLY_HISTORY = 500;

/**
 * GET /api/v1/dashboard/hosts/:id/history: every apply the host reported and
 * the audited changes made to it (tags, feed, ignore-list, pins), newest first.
 */
export const HostHistory = Type.Object({
  hostId: Type.String(),
  applies: Type.Array(ApplyRecord),
  changes: Type.Array(AuditEntry),
});
export type HostHistory = Static<typeof HostHistory>;

export const MAX_CVE_PAGE = 200;
export const CvePageQuery = Type.Object(
  {
    /** Part of a CVE id, case-insensitive ("2024-1086", "cve-2023"). */
    q: Type.Optional(Type.String({ maxLength: 32, pattern: '^[A-Za-z0-9-]*$' })),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_CVE_PAGE })),
  },
  { additionalProperties: false },
);
export type CvePageQuery = Static<typeof CvePageQuery>;

export const OpenCve = Type.Object({
  id: Type.String(),
  severity: Severity,
  cvssScore: Type.Union([Type.Number(), Type.Null()]),
  /** Hosts with an open window for it under the SLA. */
  hosts: Count,
  /** Of those, windows already past their due date. */
  breached: Count,
  /** Earliest due date among its open windows. */
  nextDueAt: Type.Union([Type.String(), Type.Null()]),
});
export type OpenCve = Static<typeof OpenCve>;

/** GET /api/v1/dashboard/cves: CVEs with open SLA windows, most urgent first, one page of them. */
export const CvePage = Type.Object({
  /** CVEs with an open SLA window in the fleet. */
  total: Count,
  /** Of those, the ones matching `q`. */
  matching: Count,
  offset: Count,
  limit: Count,
  items: Type.Array(OpenCve),
});
export type CvePage = Static<typeof CvePage>;

/** GET /api/v1/dashboard/session: who is signed in, or null; never a 401. */
export const SessionProbe = Type.Object({
  session: Type.Union([
    Type.Object({
      role: ApiRole,
      name: Type.String(),
      tokenId: Type.String(),
      csrfToken: Type.Optional(Type.String()),
      expiresAt: Type.Optional(Type.String()),
      checkinIntervalSec: Type.Integer(),
    }),
    Type.Null(),
  ]),
});
export type SessionProbe = Static<typeof SessionProbe>;

/** The orders the dashboard's host list can be sorted in (GET /api/v1/dashboard/hosts `sort`). */
export const HOST_SORTS = ['status', 'hostname', 'feed', 'kernel', 'level', 'checkin', 'exposure'] as const;
export type HostSort = (typeof HOST_SORTS)[number];
export const MAX_HOST_PAGE = 200;
/** Values listed per filter of the host list (feeds, tags, kernels, levels). */
export const MAX_HOST_FACET = 500;

export const HostPageQuery = Type.Object(
  {
    /** Part of a hostname (case-insensitive) or the start of a host id. */
    q: Type.Optional(Type.String({ maxLength: 128 })),
    status: Type.Optional(Type.Union(HOST_STATUSES.map((s) => Type.Literal(s)))),
    feed: Type.Optional(Type.String({ maxLength: 64 })),
    tag: Type.Optional(Type.String({ maxLength: 64 })),
    /** A kernel release (uname -r). */
    kernel: Type.Optional(Type.String({ maxLength: 256 })),
    level: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    sort: Type.Optional(Type.Union(HOST_SORTS.map((s) => Type.Literal(s)))),
    order: Type.Optional(Type.Union([Type.Literal('asc'), Type.Literal('desc')])),
    offset: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_HOST_PAGE })),
  },
  { additionalProperties: false },
);
export type HostPageQuery = Static<typeof HostPageQuery>;

/** One host as the dashboard's host list shows it. */
export const HostRow = Type.Object({
  id: Type.String(),
  hostname: Type.String(),
  /** Its bucket (dashboard-rules.ts hostStatus). */
  status: Type.String(),
  feed: Type.String(),
  tags: Type.Array(Type.String()),
  kernelId: Type.String(),
  release: Type.String(),
  appliedLevel: Count,
  /** The level the server wants it on, when that differs from what it runs; else null. */
  desiredLevel: Type.Union([Count, Type.Null()]),
  lastCheckinAt: Type.Union([Type.String(), Type.Null()]),
  /** Its open CVEs; null when the role may not read compliance data or the host was not evaluated. */
  exposure: Type.Union([Type.Object({ critical: Count, high: Count, total: Count }), Type.Null()]),
});
export type HostRow = Static<typeof HostRow>;

/** GET /api/v1/dashboard/hosts: one page of the hosts matching the filters, sorted on the server. */
export const HostPage = Type.Object({
  generatedAt: Type.String(),
  /** Every host. */
  total: Count,
  /** Of those, the ones matching the filters. */
  matching: Count,
  offset: Count,
  limit: Count,
  /** Whether the rows carry exposure (the role may read compliance data). */
  exposure: Type.Boolean(),
  /** The values each filter can take over the whole fleet (each list at most MAX_HOST_FACET long). */
  facets: Type.Object({
    feeds: Type.Array(Type.String()),
    tags: Type.Array(Type.String()),
    kernels: Type.Array(Type.String()),
    levels: Type.Array(Count),
  }),
  items: Type.Array(HostRow),
});
export type HostPage = Static<typeof HostPage>;

/** Hosts held below a feed's level that are named; the rest are counted. */
export const MAX_HELD_LISTED = 20;

/** How one feed's hosts on one kernel build stand against the feed's level for it. */
export const RolloutHealth = Type.Object({
  feed: Type.String(),
  kernelId: Type.String(),
  /** The feed's level for the kernel (0: none). */
  level: Count,
  /** Live hosts of the feed on that kernel. */
  total: Count,
  /** Of those, on the level or above, without an error. */
  applied: Count,
  failed: Count,
  /** Kept below the level by their ignore-list. */
  heldCount: Count,
  held: Type.Array(
    Type.Object({ hostId: Type.String(), hostname: Type.String(), ignoredFixes: Type.Array(Type.String()) }),
  ),
});
export type RolloutHealth = Static<typeof RolloutHealth>;

/** GET /api/v1/dashboard/rollouts: per feed and kernel build with hosts, the counts the rollouts page shows. */
export const DashboardRollouts = Type.Object({
  generatedAt: Type.String(),
  groups: Type.Array(RolloutHealth),
});
export type DashboardRollouts = Static<typeof DashboardRollouts>;
