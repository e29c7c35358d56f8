import { Command, InvalidArgumentError, Option } from 'commander';
import {
  DEFAULT_SLA_POLICY,
  SEVERITIES,
  type ComplianceReport,
  type FleetExposure,
  type HostExposure,
  type SlaPolicy,
} from '@livegraft/protocol';
import { table } from './format.ts';
import { apiGet, apiJson, connectedCommand, query, writeFileAtomic, type ConnectionOpts } from './report-http.ts';
import { checkOutPath } from './connection.ts';

/** Breaches shown in the terminal summary; the files carry all of them. */
const MAX_TEXT_BREACHES = 50;

interface ReportOpts extends ConnectionOpts {
  format: 'text' | 'json' | 'csv' | 'pdf';
  out?: string;
  feed?: string;
  tag?: string;
}

/** A time to the minute, in UTC, said so (as in the PDF). */
const utc = (iso: string | null): string => (iso === null ? '-' : `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`);

/** The terminal summary: open breaches first, then those closed late, each with its status as the PDF words it. */
export function renderText(r: ComplianceReport): string {
  const s = r.summary;
  const lines = [
    `compliance at ${utc(r.generatedAt)}: ${s.compliantHosts}/${s.hosts} hosts compliant; ` +
      `${s.openBreaches} open breaches, ${s.closedLate} closed late, ${s.upcoming} upcoming deadlines, ${s.openWindows} open windows`,
    `policy: ${SEVERITIES.map((k) => `${k} ${r.policy[k] === null ? 'off' : `${r.policy[k]}d`}`).join(', ')}`,
  ];
  if (r.breaches.length > 0) {
    lines.push(
      '',
      table(
        ['HOST', 'CVE', 'SEVERITY', 'SINCE (UTC)', 'DUE (UTC)', 'FIXED (UTC)', 'DAYS', 'STATUS'],
        [...r.breaches.filter((b) => b.end === null), ...r.breaches.filter((b) => b.end !== null)]
          .slice(0, MAX_TEXT_BREACHES)
          .map((b) => [
            b.hostname,
            b.cve,
            b.severity,
            b.start.slice(0, 10),
            (b.dueAt ?? '').slice(0, 10),
            b.end === null ? '-' : `${b.end.slice(0, 10)} ${b.closedBy ?? ''}`,
            b.days.toFixed(1),
            b.end === null ? 'OPEN, PAST DUE' : 'CLOSED LATE',
          ]),
      ),
    );
    if (r.breaches.length > MAX_TEXT_BREACHES)
      lines.push(`... ${r.breaches.length - MAX_TEXT_BREACHES} more (--format csv)`);
  }
  lines.push(
    '',
    table(
      ['HOST', 'KERNEL', 'LEVEL', 'OPEN', 'BREACHES', 'LATE', 'NEXT DUE (UTC)', 'COMPLIANT'],
      r.hosts.map((h) => [
        h.hostname,
        h.release,
        String(h.appliedLevel),
        String(h.openWindows),
        String(h.openBreaches),
        String(h.closedLate),
        (h.nextDueAt ?? '-').slice(0, 10),
        h.compliant ? 'yes' : 'NO',
      ]),
    ),
  );
  return lines.join('\n');
}

/** "critical=30,high=30,medium=off" on top of the current policy. */
export function parsePolicy(text: string, base: SlaPolicy): SlaPolicy {
  const out: SlaPolicy = { ...base };
  for (const part of text
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '')) {
    const m = /^(critical|high|medium|low|none|not[ -]rated)=(off|[0-9]{1,4})$/.exec(part);
    if (m === null) throw new InvalidArgumentError(`"${part}" is not <severity>=<days|off>`);
    const sev = (m[1] ?? '').replace('-', ' ') as keyof SlaPolicy;
    out[sev] = m[2] === 'off' ? null : Number(m[2]);
  }
  return out;
}

export function reportCommands(defaultServer: string): Command[] {
  const report = new Command('report').description('compliance reports for auditors');
  report.addCommand(
    connectedCommand('compliance', 'SLA compliance: breaches, upcoming deadlines, per-host status', defaultServer)
      .addOption(
        new Option('--format <format>', 'output format').choices(['text', 'json', 'csv', 'pdf']).default('text'),
      )
      .option('--out <file>', 'write to this file (atomically) instead of standard output')
      .option('--feed <feed>', 'only hosts of this feed')
      .option('--tag <tag>', 'only hosts with this tag')
      .action(async (o: ReportOpts) => {
        if (o.out !== undefined) checkOutPath(o.out);
        const q = query({ format: o.format === 'text' ? 'json' : o.format, feed: o.feed, tag: o.tag });
        const body = await apiGet(o, `/reports/compliance${q}`);
        const data =
          o.format === 'text' ? `${renderText(JSON.parse(body.toString('utf8')) as ComplianceReport)}\n` : body;
        if (o.out !== undefined) {
          await writeFileAtomic(o.out, data);
          console.error(`wrote ${o.out} (${data.length} bytes)`);
          return;
        }
        if (o.format === 'pdf' && process.stdout.isTTY) {
          throw new InvalidArgumentError('a PDF is not for the terminal: pass --out <file.pdf> or redirect');
        }
        process.stdout.write(data);
      }),
  );
  report.addCommand(
    connectedCommand(
      'policy',
      'show the SLA policy, days per severity (viewer role or above); --set and --reset change it (admin role)',
      defaultServer,
    )
      .option('--set <list>', 'e.g. "critical=15,high=30,medium=90,low=off" (admin role)')
      .option(
        '--reset',
        `back to the default (${SEVERITIES.map((s) => `${s}=${DEFAULT_SLA_POLICY[s] ?? 'off'}`).join(',')})`,
      )
      .option('--json', 'print JSON')
      .action(async (o: ConnectionOpts & { set?: string; reset?: boolean; json?: boolean }) => {
        let policy = await apiJson<SlaPolicy>(o, '/compliance/policy');
        if (o.set !== undefined || o.reset === true) {
          const next = o.reset === true ? DEFAULT_SLA_POLICY : parsePolicy(o.set ?? '', policy);
          policy = await apiJson<SlaPolicy>(o, '/compliance/policy', { method: 'PUT', json: next });
        }
        if (o.json === true) return console.log(JSON.stringify(policy, null, 2));
        console.log(
          table(
            ['SEVERITY', 'SLA'],
            SEVERITIES.map((s) => [s, policy[s] === null ? 'off' : `${policy[s]} days`]),
          ),
        );
      }),
  );

  const exposure = connectedCommand('exposure', 'CVEs still open on hosts after their live patches', defaultServer)
    .option('--host <id>', 'one host, with its CVEs')
    .option('--feed <feed>', 'only hosts of this feed')
    .option('--tag <tag>', 'only hosts with this tag')
    .option('--json', 'print JSON')
    .action(async (o: ConnectionOpts & { host?: string; feed?: string; tag?: string; json?: boolean }) => {
      if (o.host !== undefined) {
        const e = await apiJson<HostExposure>(o, `/hosts/${encodeURIComponent(o.host)}/exposure`);
        if (o.json === true) return console.log(JSON.stringify(e, null, 2));
        if (e.error !== undefined) console.log(`cannot evaluate ${e.kernel}: ${e.error.code}: ${e.error.message}`);
        console.log(
          `${e.hostname} (${e.release}, level ${e.appliedLevel}): ${e.counts.total} open CVEs ` +
            `(${e.counts.critical} critical, ${e.counts.high} high), ${e.mitigated.length} fixed live`,
        );
        console.log(
          table(
            ['CVE', 'SEVERITY', 'CVSS', 'FIXED IN', 'TITLE'],
            e.effective.map((f) => [
              f.id,
              f.severity,
              f.cvssScore === null ? '-' : f.cvssScore.toFixed(1),
              f.fixedIn === null ? '-' : f.fixedIn.version,
              f.title,
            ]),
          ),
        );
        return;
      }
      const f = await apiJson<FleetExposure>(o, `/exposure${query({ feed: o.feed, tag: o.tag })}`);
      if (o.json === true) return console.log(JSON.stringify(f, null, 2));
      console.log(
        `${f.hosts} hosts: ${f.counts.critical} critical and ${f.counts.high} high open (host, CVE) pairs; ` +
          `${f.mitigated} fixed live${f.unevaluated > 0 ? `; ${f.unevaluated} hosts not evaluated` : ''}`,
      );
      console.log(
        table(
          ['HOST', 'KERNEL', 'LEVEL', 'CRITICAL', 'HIGH', 'TOTAL', 'FIXED LIVE'],
          f.perHost.map((h) => [
            h.hostname,
            h.release,
            String(h.appliedLevel),
            String(h.counts.critical),
            String(h.counts.high),
            h.error === undefined ? String(h.counts.total) : '?',
            String(h.mitigated),
          ]),
        ),
      );
    });
  return [report, exposure];
}
