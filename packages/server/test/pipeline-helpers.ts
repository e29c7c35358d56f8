import {
  type FixBundle,
  type FixSpec,
  type JobClaim,
  type JobResult,
  type TokenCreated,
  type ValidationRecord,
} from '@livegraft/protocol';
import type { FleetHarness } from './fleet-helpers.ts';
import { buildPatch, PROC_VERSION } from './helpers.ts';

/** A second kernel build: Debian 6.1.90-1 (fixedIn 6.1.80 makes it already fixed). */
export const PROC_VERSION_90 = PROC_VERSION.replace('6.1.76-1', '6.1.90-1');

export function patchText(file: string, commit?: string): string {
  const from =
    commit === undefined ? '' : `From ${commit} Mon Sep 17 00:00:00 2001\nSubject: [PATCH] fix ${file}\n\n---\n`;
  return `${from}diff --git a/${file} b/${file}\n--- a/${file}\n+++ b/${file}\n` + '@@ -1,3 +1,4 @@\n a\n b\n+c\n d\n';
}

export function fixBundle(id: string, over: Partial<FixSpec> = {}, files?: Record<string, string>): FixBundle {
  const spec: FixSpec = {
    id,
    title: `fix ${id}`,
    cves: ['CVE-2026-46266'],
    patches: ['upstream.patch'],
    ...over,
  };
  const f = files ?? { 'upstream.patch': patchText(`net/${id}.c`) };
  return {
    spec,
    files: Object.entries(f).map(([name, text]) => ({ name, content: Buffer.from(text).toString('base64') })),
  };
}

export async function workerToken(h: FleetHarness, name = 'builder-1'): Promise<string> {
  const t = await h.ok<TokenCreated>('POST', '/tokens', { json: { name, role: 'worker' } });
  return t.token;
}

export function validation(claim: JobClaim, result: 'passed' | 'failed', reason?: string): ValidationRecord {
  return {
    result,
    reason: result === 'passed' ? null : (reason ?? 'trigger still VULNERABLE after apply'),
    problems: result === 'passed' ? [] : [reason ?? 'trigger still VULNERABLE after apply'],
    kernelRelease: claim.kernel.release,
    kernelVersion: '#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)',
    level: claim.level,
    previousLevel: claim.previous?.level ?? 0,
    startedAt: '2026-03-02T10:00:00.000Z',
    timings: { bootMs: 1000, applyMs: 200, rollbackMs: 100, reapplyMs: 150, totalMs: 5000 },
    triggers: claim.fixes.map((f) => ({
      fixId: f.id,
      before: 'VULNERABLE' as const,
      after: result === 'passed' ? ('FIXED' as const) : ('VULNERABLE' as const),
      output: 'VULNERABLE\n',
    })),
    workload: { operations: 1000, failed: 0 },
    kernelLog: [],
    agentVersion: '0.2.0',
  };
}

/** A built result for a claim: a real livepatch module (ELF with modinfo) and its manifest. */
export function builtResult(
  claim: JobClaim,
  outcome: 'passed' | 'failed',
  over: { kernelId?: string; level?: number; cves?: string[] } = {},
): JobResult {
  const p = buildPatch({ kernelId: over.kernelId ?? claim.kernel.kernelId, level: over.level ?? claim.level });
  const cves = over.cves ?? ['CVE-2026-46266'];
  p.manifest.fixes = claim.fixes.map((f) => ({
    id: f.id,
    title: `fix ${f.id}`,
    cves,
    functions: [{ name: 'icmp_socket_deliver', object: 'vmlinux' }],
  }));
  p.manifest.cves = cves;
  return {
    leaseId: claim.leaseId,
    outcome: 'built',
    manifest: p.manifest,
    module: p.bytes.toString('base64'),
    validation: validation(claim, outcome),
    buildLog: 'building...\nok\n',
    consoleLog: '[    0.000000] Linux version 6.1.0-18-amd64\n',
    timings: { buildMs: 12000, validateMs: 30000 },
  };
}
