/**
 * Reads `#define NAME "string"` lines from a generated kernel header. Only
 * string-literal values are returned; adjacent literals are concatenated as
 * the C compiler would. Escapes are decoded so the value is the runtime string.
 */
export function parseStringDefines(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^\s*#\s*define\s+([A-Za-z_][A-Za-z0-9_]*)\s+(".*)$/.exec(line);
    if (!m) continue;
    const value = decodeStringLiterals(m[2] ?? '');
    if (value !== undefined) out.set(m[1] ?? '', value);
  }
  return out;
}

const SIMPLE_ESCAPES: Record<string, string> = { n: '\n', t: '\t', r: '\r', '\\': '\\', '"': '"', "'": "'", '?': '?' };

/** Decodes one or more adjacent C string literals; undefined if the text is anything else. */
function decodeStringLiterals(src: string): string | undefined {
  let i = 0;
  let value = '';
  let literals = 0;
  while (i < src.length) {
    const c = src[i];
    if (c === ' ' || c === '\t' || c === '\r') {
      i++;
      continue;
    }
    if (c !== '"') return undefined;
    i++;
    literals++;
    for (;;) {
      if (i >= src.length) return undefined;
      const d = src[i] ?? '';
      if (d === '"') {
        i++;
        break;
      }
      if (d !== '\\') {
        value += d;
        i++;
        continue;
      }
      const e = src[i + 1] ?? '';
      const octal = /^[0-7]{1,3}/.exec(src.slice(i + 1, i + 4));
      if (octal) {
        value += String.fromCharCode(parseInt(octal[0], 8));
        i += 1 + octal[0].length;
      } else if (e in SIMPLE_ESCAPES) {
        value += SIMPLE_ESCAPES[e];
        i += 2;
      } else {
        return undefined;
      }
    }
  }
  return literals > 0 ? value : undefined;
}

/** A C string literal holding `value`; control characters and non-ASCII bytes are octal-escaped. */
export function cString(value: string): string {
  let out = '"';
  for (const byte of Buffer.from(value, 'utf8')) {
    if (byte === 0x22) out += '\\"';
    else if (byte === 0x5c) out += '\\\\';
    // '?' is escaped so that no trigraph can ever form, whatever the -std.
    else if (byte === 0x3f) out += '\\?';
    else if (byte >= 0x20 && byte < 0x7f) out += String.fromCharCode(byte);
    else out += `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return `${out}"`;
}
