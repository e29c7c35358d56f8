import { hostname } from 'node:os';

/**
 * `author` when none is configured: the administrator of the machine the
 * server runs on. OpenVEX wants the organisation: set --vex-author.
 */
export function defaultVexAuthor(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '-') || 'localhost';
  return `root@${host}`;
}

const EMAIL_RE = /^[^\s@<>()",;:]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$/;
// An absolute IRI: a scheme, a colon, then no space (RFC 3987's characters are otherwise free).
const IRI_RE = /^[A-Za-z][A-Za-z0-9+.-]*:[^\s<>"{}|\\^`]+$/;

/** Whether a configured author is an email address or an absolute IRI (https://example.org/security, mailto:...). */
export function isVexAuthor(value: string): boolean {
  return value.length <= 512 && (EMAIL_RE.test(value) || IRI_RE.test(value));
}
