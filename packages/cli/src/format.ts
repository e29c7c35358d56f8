import { visibleText } from '@livegraft/protocol';

/** Renders rows as an aligned plain-text table. */
export function table(headers: string[], rows: string[][]): string {
  // Cells may hold host-supplied text: control characters are shown, never sent, and never break alignment.
  const shown = rows.map((r) => r.map((c) => visibleText(c)));
  const widths = headers.map((h, i) => Math.max(h.length, ...shown.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...shown.map(line)].join('\n');
}

export function ago(iso: string | null, now: Date): string {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((now.getTime() - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s ago`;
  if (s < 7200) return `${Math.round(s / 60)}m ago`;
  if (s < 172800) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

/**
 * Makes control characters visible in everything written as text to the
 * stream (console.log and friends), so a host-supplied hostname or error
 * message cannot drive the admin's terminal. Binary writes pass untouched.
 */
export function showControlCharacters(stream: NodeJS.WriteStream): void {
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  stream.write = ((chunk: unknown, ...rest: unknown[]) =>
    write(typeof chunk === 'string' ? visibleText(chunk, true) : chunk, ...rest)) as typeof stream.write;
}
