import type { JSX } from 'preact';
import type { LevelFix, SkippedFix } from '@livegraft/protocol';

/** Git's customary short form of a commit id. */
const SHORT_ID = 12;

/**
 * A level's fixes: each with how it was made (upstream patch or hand-written
 * C) and the upstream commits it carries (short id + subject), then the fixes
 * its build left out and why.
 */
export function FixList(props: { fixes: LevelFix[] | undefined; skipped: SkippedFix[] | undefined }): JSX.Element {
  const fixes = props.fixes ?? [];
  const skipped = props.skipped ?? [];
  if (fixes.length === 0 && skipped.length === 0) return <p class="muted">No fixes listed.</p>;
  return (
    <ul class="fixes">
      {fixes.map((f) => (
        <li key={f.id} data-fix={f.id}>
          <span class="fix-head">
            <strong>{f.id}</strong> {f.title}{' '}
            <span class="tag" data-kind={f.kind}>
              {f.kind === 'patch' ? 'upstream patch' : 'hand-written'}
            </span>
          </span>
          {f.commits.map((c, i) => (
            <span key={`${c.id ?? ''}${i}`} class="commit">
              {c.id !== undefined && (
                <code class="mono" title={c.id}>
                  {c.id.slice(0, SHORT_ID)}
                </code>
              )}{' '}
              {c.subject}
            </span>
          ))}
        </li>
      ))}
      {skipped.map((s) => (
        <li key={`skipped-${s.id}`} class="skipped" data-skipped={s.id}>
          <span class="fix-head">
            <strong>{s.id}</strong> <span class="tag">not built</span>
          </span>
          <span class="muted">
            {s.cves.length > 0 && `${s.cves.join(', ')}: `}
            {s.reason}
          </span>
        </li>
      ))}
    </ul>
  );
}
