import { LivegraftError } from '@livegraft/protocol';

export type SeverityBucket = 'critical' | 'high' | 'medium' | 'low' | 'none' | 'not rated';

/** Most severe first: the order reports are grouped in. */
export const SEVERITY_ORDER: readonly SeverityBucket[] = ['critical', 'high', 'medium', 'low', 'none', 'not rated'];

export interface Cvss3 {
  vector: string;
  score: number;
  severity: string;
}

/** CVSS v3.x qualitative rating scale (specification section 5). */
export function severityBucket(score: number | null | undefined): SeverityBucket {
  if (score === null || score === undefined || !Number.isFinite(score)) return 'not rated';
  if (score >= 9) return 'critical';
  if (score >= 7) return 'high';
  if (score >= 4) return 'medium';
  if (score > 0) return 'low';
  return 'none';
}

const WEIGHTS = {
  AV: { N: 0.85, A: 0.62, L: 0.55, P: 0.2 },
  AC: { L: 0.77, H: 0.44 },
  UI: { N: 0.85, R: 0.62 },
  CIA: { H: 0.56, L: 0.22, N: 0 },
} as const;

/** CVSS 3.1 Appendix A: round up to one decimal without floating point surprises. */
function roundUp31(x: number): number {
  const i = Math.round(x * 100000);
  return i % 10000 === 0 ? i / 100000 : (Math.floor(i / 10000) + 1) / 10;
}

function roundUp30(x: number): number {
  return Math.ceil(x * 10) / 10;
}

/**
 * Base score of a CVSS 3.0 or 3.1 vector such as `CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:L/I:N/A:H`.
 * Temporal and environmental metrics, if present, are ignored: reports show the base score.
 */
export function cvss3BaseScore(vector: string): number {
  const parts = vector.trim().split('/');
  const head = parts.shift();
  if (head !== 'CVSS:3.0' && head !== 'CVSS:3.1') {
    throw new LivegraftError(
      'CVSS_VECTOR_INVALID',
      `"${vector}" is not a CVSS 3.0/3.1 vector (must start with CVSS:3.x/)`,
    );
  }
  const m = new Map<string, string>();
  for (const p of parts) {
    const [k, v, extra] = p.split(':');
    if (k === undefined || v === undefined || extra !== undefined || m.has(k)) {
      throw new LivegraftError('CVSS_VECTOR_INVALID', `"${vector}": bad or repeated metric "${p}"`);
    }
    m.set(k, v);
  }
  const pick = <T extends Record<string, number>>(name: string, table: T): number => {
    const v = m.get(name);
    if (v === undefined || !(v in table)) {
      throw new LivegraftError('CVSS_VECTOR_INVALID', `"${vector}": metric ${name} missing or invalid`);
    }
    return table[v] as number;
  };
  const scope = m.get('S');
  if (scope !== 'U' && scope !== 'C')
    throw new LivegraftError('CVSS_VECTOR_INVALID', `"${vector}": metric S missing or invalid`);
  const changed = scope === 'C';
  const av = pick('AV', WEIGHTS.AV);
  const ac = pick('AC', WEIGHTS.AC);
  const pr = pick('PR', changed ? { N: 0.85, L: 0.68, H: 0.5 } : { N: 0.85, L: 0.62, H: 0.27 });
  const ui = pick('UI', WEIGHTS.UI);
  const c = pick('C', WEIGHTS.CIA);
  const i = pick('I', WEIGHTS.CIA);
  const a = pick('A', WEIGHTS.CIA);
  const iss = 1 - (1 - c) * (1 - i) * (1 - a);
  const impact = changed ? 7.52 * (iss - 0.029) - 3.25 * Math.pow(iss - 0.02, 15) : 6.42 * iss;
  const exploitability = 8.22 * av * ac * pr * ui;
  if (impact <= 0) return 0;
  const roundUp = head === 'CVSS:3.1' ? roundUp31 : roundUp30;
  return changed
    ? roundUp(Math.min(1.08 * (impact + exploitability), 10))
    : roundUp(Math.min(impact + exploitability, 10));
}

/** A validated CVSS record from a vector: score computed, severity named per the rating scale. */
export function cvss3FromVector(vector: string): Cvss3 {
  const score = cvss3BaseScore(vector);
  return { vector: vector.trim(), score, severity: severityBucket(score).toUpperCase() };
}
