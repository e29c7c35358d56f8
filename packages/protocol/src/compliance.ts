import { Type, type Static } from 'typebox';
import { CveId, FixId } from './fix.ts';
import { CoverageReport } from './pipeline.ts';
import { ComplianceUserspaceRow } from './userspace.ts';
import { validator } from './validate.ts';

/**
 * Compliance and exploit-detection wire types: exposure per host and fleet,
 * SLA windows and breaches, and tripwire events that agents report.
 */

/** CVSS v3 qualitative buckets, most severe first ("not rated": no score, not "low"). */
export const SEVERITIES = ['critical', 'high', 'medium', 'low', 'none', 'not rated'] as const;
export const Severity = Type.Union([
  Type.Literal('critical'),
  Type.Literal('high'),
  Type.Literal('medium'),
  Type.Literal('low'),
  Type.Literal('none'),
  Type.Literal('not rated'),
]);
export type Severity = Static<typeof Severity>;

export const SeverityCounts = Type.Object({
  critical: Type.Integer(),
  high: Type.Integer(),
  medium: Type.Integer(),
  low: Type.Integer(),
  none: Type.Integer(),
  'not rated': Type.Integer(),
  total: Type.Integer(),
});
export type SeverityCounts = Static<typeof SeverityCounts>;

// ---------------------------------------------------------------------------
// Tripwires

/** Events one request may carry; an agent with more sends several requests. */
export const MAX_TRIPWIRE_EVENTS = 100;

/** One hit of LG_TRIPWIRE() in a live patch, as the agent read it from the kernel log. */
export const TripwireEvent = Type.Object(
  {
    cve: CveId,
    fixId: Type.Optional(FixId),
    /** The patch level whose module wrote the line. */
    level: Type.Optional(Type.Integer({ minimum: 0, maximum: 1_000_000 })),
    /** Thread-group id (the process id) in the initial PID namespace. */
    pid: Type.Integer({ minimum: 0, maximum: 0x7fffffff }),
    /** uid in the initial user namespace. */
    uid: Type.Integer({ minimum: 0, maximum: 0xffffffff }),
    /** The task's comm, sanitised by the module ("?" for unusual bytes). */
    comm: Type.String({ maxLength: 64 }),
    /** Seconds since boot, from the kernel log record. */
    kernelTime: Type.Optional(Type.Number({ minimum: 0 })),
    /** Wall-clock time of the hit as the agent computed it. */
    at: Type.String({ format: 'date-time' }),
    /** The raw log line, for the record. */
    message: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
);
export type TripwireEvent = Static<typeof TripwireEvent>;

/** Body of POST /api/v1/hosts/tripwire (host token). */
export const TripwireReport = Type.Object(
  { events: Type.Array(TripwireEvent, { minItems: 1, maxItems: MAX_TRIPWIRE_EVENTS }) },
  { additionalProperties: false },
);
export type TripwireReport = Static<typeof TripwireReport>;
export const tripwireReportValidator = validator(TripwireReport, 'tripwire report');

export const TripwireReportResponse = Type.Object({ accepted: Type.Integer({ minimum: 0 }) });
export type TripwireReportResponse = Static<typeof TripwireReportResponse>;

/** A stored tripwire event, as GET /api/v1/tripwires lists it. */
export const TripwireRecord = Type.Object({
  id: Type.String(),
  hostId: Type.String(),
  hostname: Type.String(),
  cve: Type.String(),
  fixId: Type.Union([Type.String(), Type.Null()]),
  level: Type.Union([Type.Integer(), Type.Null()]),
  pid: Type.Integer(),
  uid: Type.Integer(),
  comm: Type.String(),
  kernelTime: Type.Union([Type.Number(), Type.Null()]),
  at: Type.String(),
  receivedAt: Type.String(),
  message: Type.Union([Type.String(), Type.Null()]),
});
export type TripwireRecord = Static<typeof TripwireRecord>;

/**
 * The kernel log line LG_TRIPWIRE() writes (the generated module's lg_tripwire):
 *   livegraft: tripwire cve=CVE-2099-0001 fix=LG-DEMO-0003 level=3 pid=812 uid=1000 comm=sh
 * Anything may precede "livegraft:" (a /dev/kmsg prefix, a dmesg timestamp).
 */
export const TRIPWIRE_LINE =
  /livegraft: tripwire cve=(CVE-[0-9]{4}-[0-9]{4,7}) fix=([A-Za-z0-9][A-Za-z0-9._-]{0,63}) level=([0-9]{1,7}) pid=([0-9]{1,10}) uid=([0-9]{1,10}) comm=([\x21-\x7e]{0,64})$/;

/** The event in a tripwire log line (without `at`, which the reader knows), or undefined if it is not one. */
export function parseTripwireLine(line: string): Omit<TripwireEvent, 'at'> | undefined {
  const m = TRIPWIRE_LINE.exec(line.trimEnd());
  if (m === null) return undefined;
  const [, cve = '', fixId = '', level = '', pid = '', uid = '', comm = ''] = m;
  const pidN = Number(pid);
  const uidN = Number(uid);
  if (pidN > 0x7fffffff || uidN > 0xffffffff) return undefined;
  return { cve, fixId, level: Number(level), pid: pidN, uid: uidN, comm, message: line.trimEnd().slice(0, 1024) };
}

// ---------------------------------------------------------------------------
// Exposure

export const ExposedCve = Type.Object({
  id: Type.String(),
  title: Type.String(),
  severity: Severity,
  cvssScore: Type.Union([Type.Number(), Type.Null()]),
  published: Type.Union([Type.String(), Type.Null()]),
  fixedIn: Type.Union([Type.Object({ version: Type.String(), kind: Type.String() }), Type.Null()]),
});
export type ExposedCve = Static<typeof ExposedCve>;

/** How current the server's CVE data is; in exposure answers and the compliance report. */
export const CveDatasetStatus = Type.Object({
  /** When the dataset file was written. */
  generatedAt: Type.String(),
  cves: Type.Integer(),
  /** Date (YYYY-MM-DD) of the kernel CVE records: the CNA snapshot, or the newest record of the last import. */
  cveRecordsAsOf: Type.Union([Type.String(), Type.Null()]),
  /** Day the Debian kernel changelogs were read from the archive. */
  debianAsOf: Type.Union([Type.String(), Type.Null()]),
  /** Days since the older of the two; null when the dataset does not say. */
  ageDays: Type.Union([Type.Integer(), Type.Null()]),
  /** Older than 14 days (or of unknown age). */
  stale: Type.Boolean(),
  /** Newest Debian kernel package version each changelog knows, e.g. 6.1.192-3. */
  debianVersions: Type.Array(Type.String()),
  /** CVE_DATA_STALE, CVE_DATA_AGE_UNKNOWN, DEBIAN_VERSION_UNKNOWN (hosts on a Debian kernel the data does not know). */
  warnings: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
});
export type CveDatasetStatus = Static<typeof CveDatasetStatus>;

/** GET /api/v1/hosts/:id/exposure */
export const HostExposure = Type.Object({
  hostId: Type.String(),
  hostname: Type.String(),
  kernelId: Type.String(),
  release: Type.String(),
  /** The kernel string evaluated: the host's /proc/version line, else its release. */
  kernel: Type.String(),
  appliedLevel: Type.Integer(),
  /** CVEs the applied level's manifest lists. */
  appliedCves: Type.Array(Type.String()),
  counts: SeverityCounts,
  effective: Type.Array(ExposedCve),
  /** Applied CVEs that affected the kernel (fixed live). */
  mitigated: Type.Array(Type.String()),
  /** Applied CVEs the kernel is not affected by (already fixed, or unknown to the dataset). */
  notApplicable: Type.Array(Type.String()),
  /** Set when the kernel could not be evaluated (e.g. KERNEL_VERSION_UNKNOWN); counts are then zero. */
  error: Type.Optional(Type.Object({ code: Type.String(), message: Type.String() })),
  warnings: Type.Array(Type.Object({ code: Type.String(), message: Type.String() })),
  dataset: CveDatasetStatus,
});
export type HostExposure = Static<typeof HostExposure>;

/** GET /api/v1/exposure */
export const FleetExposure = Type.Object({
  generatedAt: Type.String(),
  hosts: Type.Integer(),
  /** Hosts whose kernel could not be evaluated. */
  unevaluated: Type.Integer(),
  /** Sum over hosts of open (host, CVE) exposures, by severity. */
  counts: SeverityCounts,
  /** Hosts with at least one open CVE of that severity. */
  hostsExposed: SeverityCounts,
  /** Sum over hosts of CVEs fixed by applied live patches. */
  mitigated: Type.Integer(),
  perHost: Type.Array(
    Type.Object({
      hostId: Type.String(),
      hostname: Type.String(),
      release: Type.String(),
      appliedLevel: Type.Integer(),
      counts: SeverityCounts,
      mitigated: Type.Integer(),
      error: Type.Optional(Type.String()),
    }),
  ),
});
export type FleetExposure = Static<typeof FleetExposure>;

const HostRef = Type.Object({ hostId: Type.String(), hostname: Type.String(), release: Type.String() });

/** GET /api/v1/cves/:id */
export const CveHosts = Type.Object({
  id: Type.String(),
  known: Type.Boolean(),
  title: Type.Union([Type.String(), Type.Null()]),
  severity: Severity,
  cvssScore: Type.Union([Type.Number(), Type.Null()]),
  published: Type.Union([Type.String(), Type.Null()]),
  exposed: Type.Array(HostRef),
  fixedLive: Type.Array(Type.Intersect([HostRef, Type.Object({ level: Type.Integer() })])),
  /** Hosts that ran an affected kernel earlier and now run one that is not affected. */
  fixedByUpgrade: Type.Array(Type.Intersect([HostRef, Type.Object({ at: Type.String() })])),
});
export type CveHosts = Static<typeof CveHosts>;

// ---------------------------------------------------------------------------
// Compliance

/** Days allowed from exposure start to remediation, per severity; null: no SLA for that severity. */
export const SlaPolicy = Type.Object(
  {
    critical: Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()]),
    high: Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()]),
    medium: Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()]),
    low: Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()]),
    none: Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()]),
    'not rated': Type.Union([Type.Integer({ minimum: 1, maximum: 3650 }), Type.Null()]),
  },
  { additionalProperties: false },
);
export type SlaPolicy = Static<typeof SlaPolicy>;
export const slaPolicyValidator = validator(SlaPolicy, 'SLA policy');

/** 30 days for CVSS >= 7 (high and critical); no SLA for the rest. */
export const DEFAULT_SLA_POLICY: SlaPolicy = {
  critical: 30,
  high: 30,
  medium: null,
  low: null,
  none: null,
  'not rated': null,
};

export const WindowClosedBy = Type.Union([Type.Literal('live-patch'), Type.Literal('kernel-upgrade')]);
export type WindowClosedBy = Static<typeof WindowClosedBy>;

/** How long one host was exposed to one CVE. */
export const ExposureWindow = Type.Object({
  hostId: Type.String(),
  hostname: Type.String(),
  cve: Type.String(),
  severity: Severity,
  cvssScore: Type.Union([Type.Number(), Type.Null()]),
  /** The kernel the host ran when the window opened. */
  release: Type.String(),
  kernelId: Type.String(),
  /** max(CVE published, host first seen on that kernel). */
  start: Type.String(),
  /** When it was fixed; null while open. */
  end: Type.Union([Type.String(), Type.Null()]),
  closedBy: Type.Union([WindowClosedBy, Type.Null()]),
  /** The live patch level that fixed it, when closedBy is live-patch. */
  fixedByLevel: Type.Union([Type.Integer(), Type.Null()]),
  /** start + SLA days; null when the policy sets no SLA for the severity. */
  dueAt: Type.Union([Type.String(), Type.Null()]),
  /** end (or now, while open) - start. */
  days: Type.Number(),
  breached: Type.Boolean(),
});
export type ExposureWindow = Static<typeof ExposureWindow>;

export const ComplianceHostRow = Type.Object({
  hostId: Type.String(),
  hostname: Type.String(),
  release: Type.String(),
  appliedLevel: Type.Integer(),
  lastCheckinAt: Type.Union([Type.String(), Type.Null()]),
  openWindows: Type.Integer(),
  openBreaches: Type.Integer(),
  closedLate: Type.Integer(),
  /** Earliest due date among its open windows with an SLA. */
  nextDueAt: Type.Union([Type.String(), Type.Null()]),
  compliant: Type.Boolean(),
});
export type ComplianceHostRow = Static<typeof ComplianceHostRow>;

/** GET /api/v1/reports/compliance?format=json */
export const ComplianceReport = Type.Object({
  generatedAt: Type.String(),
  policy: SlaPolicy,
  filters: Type.Object({ feed: Type.Optional(Type.String()), tag: Type.Optional(Type.String()) }),
  dataset: CveDatasetStatus,
  summary: Type.Object({
    hosts: Type.Integer(),
    compliantHosts: Type.Integer(),
    openWindows: Type.Integer(),
    /** Open windows past their due date. */
    openBreaches: Type.Integer(),
    /** Closed windows that took longer than their SLA. */
    closedLate: Type.Integer(),
    /** Open windows with an SLA whose due date is still ahead. */
    upcoming: Type.Integer(),
    closedWindows: Type.Integer(),
    /** Mean days from start to end over closed windows; null without any. */
    meanDaysToRemediate: Type.Union([Type.Number(), Type.Null()]),
  }),
  breaches: Type.Array(ExposureWindow),
  upcoming: Type.Array(ExposureWindow),
  hosts: Type.Array(ComplianceHostRow),
  /** User-space libraries per host: CVEs live-patched in every process, and those still open. */
  userspace: Type.Optional(Type.Array(ComplianceUserspaceRow)),
  /** The build pipeline's CVE x kernel build coverage, fleet-wide (the feed and tag filters do not narrow it). */
  coverage: Type.Optional(CoverageReport),
});
export type ComplianceReport = Static<typeof ComplianceReport>;

export const REPORT_FORMATS = ['json', 'csv', 'pdf'] as const;
export type ReportFormat = (typeof REPORT_FORMATS)[number];
