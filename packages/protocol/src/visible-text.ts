/**
 * Text that came from a host (hostname, error messages, kmsg lines) may hold
 * terminal escape sequences. Before it reaches a terminal or a page, every
 * control character is shown as a visible stand-in instead: C0 controls and
 * DEL as their Unicode control pictures (ESC becomes "␛"), C1 controls as
 * "\u009b"-style text (a valid escape inside JSON strings too). Newlines and
 * tabs are kept only where asked for.
 * This module imports nothing, so the dashboard can bundle it alone.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;
// eslint-disable-next-line no-control-regex
const CONTROL_AND_LINES = /[\u0000-\u001f\u007f-\u009f]/g;

function picture(c: string): string {
  const code = c.charCodeAt(0);
  if (code < 0x20) return String.fromCharCode(0x2400 + code);
  if (code === 0x7f) return '\u2421';
  return `\\u${code.toString(16).padStart(4, '0')}`;
}

/** The text with control characters made visible; `multiline` keeps newlines and tabs. */
export function visibleText(text: string, multiline = false): string {
  return text.replace(multiline ? CONTROL : CONTROL_AND_LINES, picture);
}

/** A JSON.parse reviver that makes every string in the value visible text (newlines and tabs kept). */
export function visibleStrings(_key: string, value: unknown): unknown {
  return typeof value === 'string' ? visibleText(value, true) : value;
}
