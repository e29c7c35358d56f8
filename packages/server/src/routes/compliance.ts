import { Type } from 'typebox';
import { SlaPolicy, type ComplianceReport, type CoverageReport, type ExposureWindow } from '@livegraft/protocol';
import { guard } from '../auth.ts';
import { coverageCsv, windowsCsv } from '../compliance/csv.ts';
import { complianceReportPdf } from '../compliance/report-pdf.ts';
import { COMPLIANCE_TOOLING, type ComplianceService } from '../compliance/service.ts';
import type { App, RouteContext } from '../context.ts';
import { HostParams, ScopeQuery } from './exposure.ts';
import { userspaceCsv, userspaceReportRows } from '../userspace/report.ts';

const ReportQuery = Type.Object(
  {
    format: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('csv'), Type.Literal('pdf')])),
    /** CSV only: the exposure windows (default), the build pipeline's coverage matrix, or user-space CVEs per host. */
    part: Type.Optional(Type.Union([Type.Literal('windows'), Type.Literal('coverage'), Type.Literal('userspace')])),
    feed: ScopeQuery.properties.feed,
    tag: ScopeQuery.properties.tag,
  },
  { additionalProperties: false },
);

function reportName(generatedAt: string, ext: string): string {
  return `livegraft-compliance-${generatedAt.slice(0, 10)}.${ext}`;
}

/** SLA policy, exposure windows, breaches and the compliance report (JSON, CSV, PDF). */
export function complianceRoutes(
  app: App,
  ctx: RouteContext,
  compliance: ComplianceService,
  coverage?: () => Promise<CoverageReport>,
): void {
  app.get('/compliance/policy', { onRequest: guard(ctx.auth, 'viewer') }, async (): Promise<SlaPolicy> =>
    compliance.policy(),
  );

  app.put(
    '/compliance/policy',
    { schema: { body: SlaPolicy }, onRequest: guard(ctx.auth, 'admin') },
    async (req): Promise<SlaPolicy> => {
      const policy = await compliance.setPolicy(req.body);
      req.log.info({ policy }, 'SLA policy changed');
      return policy;
    },
  );

  app.get(
    '/hosts/:id/windows',
    { schema: { params: HostParams }, onRequest: guard(ctx.auth, 'viewer') },
    async (req): Promise<ExposureWindow[]> => compliance.hostWindows(req.params.id),
  );

  app.get(
    '/reports/compliance',
    { schema: { querystring: ReportQuery }, onRequest: guard(ctx.auth, 'viewer') },
    async (req, reply): Promise<ComplianceReport | string | Buffer> => {
      const { format = 'json', feed, tag, part = 'windows' } = req.query;
      const made = await compliance.report({ feed, tag });
      const { windows } = made;
      const withCoverage = coverage === undefined ? made.report : { ...made.report, coverage: await coverage() };
      const userspace = ctx.userspace === undefined ? [] : await userspaceReportRows(ctx.userspace, made.report.hosts);
      const report = userspace.length === 0 ? withCoverage : { ...withCoverage, userspace };
      if (format === 'json') return report;
      const ext = format;
      void reply.header('content-disposition', `attachment; filename="${reportName(report.generatedAt, ext)}"`);
      if (format === 'csv') {
        void reply.type('text/csv; charset=utf-8');
        if (part === 'coverage' && report.coverage !== undefined) return coverageCsv(report.coverage);
        if (part === 'userspace') return userspaceCsv(userspace);
        return windowsCsv(windows);
      }
      void reply.type('application/pdf');
      return complianceReportPdf(report, COMPLIANCE_TOOLING);
    },
  );
}
