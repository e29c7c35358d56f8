import type { JSX } from 'preact';
import type { SeverityCounts } from '@livegraft/protocol';

/** Hand-drawn SVG: no chart library, a few hundred bytes each. */

/** Every bucket the server counts, so the bars add up to the total above them. */
const SEVERITY_ROWS = ['critical', 'high', 'medium', 'low', 'none', 'not rated'] as const;

export function SeverityBars(props: { counts: SeverityCounts; hosts?: SeverityCounts }): JSX.Element {
  const max = Math.max(1, ...SEVERITY_ROWS.map((s) => props.counts[s]));
  const sum = SEVERITY_ROWS.reduce((n, s) => n + props.counts[s], 0);
  return (
    <div class="sevbars" role="list" aria-label="open CVEs by severity">
      {sum !== props.counts.total && (
        <p class="error" role="alert">
          The severities add up to {sum}, not {props.counts.total}: the server counts a bucket this page does not know.
        </p>
      )}
      {SEVERITY_ROWS.map((s) => (
        <div class="sevbar" role="listitem" key={s} data-severity={s}>
          <span class="sevbar-label">{s}</span>
          <span class="sevbar-track">
            <span
              class={`sevbar-fill sev-${s.replace(' ', '-')}`}
              style={{ width: `${(100 * props.counts[s]) / max}%` }}
            />
          </span>
          <span class="sevbar-value" data-value={props.counts[s]}>
            {props.counts[s]}
          </span>
          {props.hosts !== undefined && (
            <span class="sevbar-hosts muted">
              {props.hosts[s]} host{props.hosts[s] === 1 ? '' : 's'}
            </span>
          )}
        </div>
      ))}
    </div>
  );
}

export interface Series {
  label: string;
  /** CSS class giving the stroke/fill colour. */
  tone: string;
  points: { t: number; v: number }[];
}

const W = 640;
const H = 200;
const PAD = { l: 36, r: 12, t: 12, b: 26 };

function day(t: number): string {
  return new Date(t).toISOString().slice(5, 10);
}

/** Step lines over time with a y axis from 0; x ticks are dates (UTC). */
export function TimeChart(props: { series: Series[]; label: string }): JSX.Element {
  const all = props.series.flatMap((s) => s.points);
  if (all.length === 0) return <p class="muted">No data yet.</p>;
  const t0 = Math.min(...all.map((p) => p.t));
  const t1 = Math.max(...all.map((p) => p.t), t0 + 1);
  const vmax = Math.max(1, ...all.map((p) => p.v));
  const x = (t: number): number => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (v: number): number => H - PAD.b - (v / vmax) * (H - PAD.t - PAD.b);
  const ticks = [0, 0.25, 0.5, 0.75, 1].map((f) => t0 + f * (t1 - t0));
  const yticks = [0, Math.round(vmax / 2), vmax].filter((v, i, a) => a.indexOf(v) === i);
  return (
    <figure class="chart">
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={props.label} preserveAspectRatio="none">
        {yticks.map((v) => (
          <g key={`y${v}`}>
            <line class="grid" x1={PAD.l} x2={W - PAD.r} y1={y(v)} y2={y(v)} />
            <text class="axis" x={PAD.l - 6} y={y(v) + 4} text-anchor="end">
              {v}
            </text>
          </g>
        ))}
        {ticks.map((t, i) => (
          <text
            key={`x${t}`}
            class="axis"
            x={x(t)}
            y={H - 6}
            text-anchor={i === 0 ? 'start' : i === ticks.length - 1 ? 'end' : 'middle'}
          >
            {day(t)}
          </text>
        ))}
        {props.series.map((s) => {
          if (s.points.length === 0) return null;
          let d = '';
          s.points.forEach((p, i) => {
            d += i === 0 ? `M${x(p.t)},${y(p.v)}` : `H${x(p.t)}V${y(p.v)}`;
          });
          const last = s.points[s.points.length - 1];
          if (last !== undefined) d += `H${x(t1)}`;
          const area = `${d}V${y(0)}H${x(s.points[0]?.t ?? t0)}Z`;
          return (
            <g key={s.label} class={`series ${s.tone}`}>
              <path class="area" d={area} />
              <path class="line" d={d} />
            </g>
          );
        })}
      </svg>
      <figcaption class="legend">
        {props.series.map((s) => (
          <span key={s.label} class={`key ${s.tone}`}>
            {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

/** A rollout's progress: hosts on the level out of hosts on the kernel, with the promotion threshold marked. */
export function Progress(props: {
  done: number;
  total: number;
  failed?: number;
  threshold?: number;
  label: string;
}): JSX.Element {
  const total = Math.max(props.total, 1);
  const okPct = (100 * (props.done - (props.failed ?? 0))) / total;
  const failPct = (100 * (props.failed ?? 0)) / total;
  return (
    <svg class="progress" viewBox="0 0 100 8" preserveAspectRatio="none" role="img" aria-label={props.label}>
      <rect class="track" x="0" y="0" width="100" height="8" rx="2" />
      <rect class="done" x="0" y="0" width={Math.max(0, okPct)} height="8" rx="2" />
      {failPct > 0 && <rect class="failed" x={okPct} y="0" width={failPct} height="8" />}
      {props.threshold !== undefined && (
        <line class="threshold" x1={props.threshold} x2={props.threshold} y1="0" y2="8" />
      )}
    </svg>
  );
}
