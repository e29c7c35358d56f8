/** Longer Cookie headers are not parsed (browsers send far less to one origin). */
const MAX_COOKIE_HEADER_CHARS = 8192;

/** One cookie's value from a Cookie header, or undefined. Values are not decoded: ours are base64url. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined || header.length > MAX_COOKIE_HEADER_CHARS) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

export interface CookieOptions {
  /** Seconds; 0 deletes the cookie. */
  maxAgeSec: number;
  secure: boolean;
}

/** A Set-Cookie value: HttpOnly (scripts never see it), SameSite=Strict (no cross-site sends), whole origin. */
export function sessionCookie(name: string, value: string, o: CookieOptions): string {
  const parts = [`${name}=${value}`, 'Path=/', 'HttpOnly', 'SameSite=Strict', `Max-Age=${o.maxAgeSec}`];
  if (o.secure) parts.push('Secure');
  return parts.join('; ');
}
