import type { ApiError, ApiRole } from '@livegraft/protocol';
// Host-supplied text (hostnames, errors, kernel messages) is shown with its control characters visible.
import { visibleStrings } from '@livegraft/protocol/visible-text';

/** Everything goes through the server's public HTTP API, the same one the CLI uses. */
export const API = '/api/v1';

/** What GET/POST /api/v1/session answer. */
export interface SessionInfo {
  role: ApiRole;
  name: string;
  tokenId: string;
  csrfToken?: string;
  expiresAt?: string;
  checkinIntervalSec: number;
}

export class ApiFailure extends Error {
  readonly status: number;
  readonly code: string;

  constructor(status: number, body: Partial<ApiError>) {
    super(body.message ?? `request failed with HTTP ${status}`);
    this.status = status;
    this.code = body.code ?? 'HTTP_' + String(status);
  }
}

let csrfToken: string | undefined;
let onSignedOut: () => void = () => {};

export function setCsrf(token: string | undefined): void {
  csrfToken = token;
}

/** Called when the server says the session is gone (expired, signed out elsewhere, token revoked). */
export function whenSignedOut(f: () => void): void {
  onSignedOut = f;
}

export async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken !== undefined) headers['x-csrf-token'] = csrfToken;
  const res = await fetch(API + path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json: unknown;
  try {
    json = text === '' ? undefined : JSON.parse(text, visibleStrings);
  } catch {
    json = undefined;
  }
  if (!res.ok) {
    if (res.status === 401 && path !== '/session') onSignedOut();
    throw new ApiFailure(res.status, (json ?? {}) as Partial<ApiError>);
  }
  return json as T;
}

export const get = <T>(path: string): Promise<T> => call<T>('GET', path);

export { mayOperate as canOperate, mayRead } from '@livegraft/protocol/dashboard-rules';
