import { Gauge, type Registry } from 'prom-client';
import type { ApiTokenRepository } from './db/tokens.ts';

/** Tokens expiring within this are counted as close to expiry (time to make and roll out a new one). */
export const TOKEN_EXPIRY_WARNING_DAYS = 14;
const DAY_MS = 86_400_000;

/** True when the token has an expiry and it has passed. */
export function isExpired(expiresAt: string | null | undefined, now: Date): boolean {
  return expiresAt !== null && expiresAt !== undefined && Date.parse(expiresAt) <= now.getTime();
}

/** `livegraft_api_tokens_expiring`: live API tokens that expire within TOKEN_EXPIRY_WARNING_DAYS. */
export function registerTokenExpiryMetric(registry: Registry, tokens: ApiTokenRepository, clock: () => Date): void {
  new Gauge({
    name: 'livegraft_api_tokens_expiring',
    help: `API tokens, not revoked and not yet expired, that expire within ${TOKEN_EXPIRY_WARNING_DAYS} days`,
    registers: [registry],
    async collect() {
      const now = clock().getTime();
      const soon = (await tokens.list()).filter((t) => {
        if (t.revokedAt !== null || t.expiresAt === null || t.expiresAt === undefined) return false;
        const at = Date.parse(t.expiresAt);
        return at > now && at - now <= TOKEN_EXPIRY_WARNING_DAYS * DAY_MS;
      });
      this.set(soon.length);
    },
  });
}
