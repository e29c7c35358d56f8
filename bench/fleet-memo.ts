// bench/fleet-memo: what simulated hosts in one worker process share. They
// verify the same metadata bytes with the same keys, so a worker keeps one
// memo of (public key, signed bytes, signature) triples that verified, and one
// of public keys already converted from their TUF encoding. Nothing else is
// shared: every request, download, report and journal commit stays per host.
import crypto, { KeyObject, createHash } from 'node:crypto';
import { syncBuiltinESMExports } from 'node:module';

/** Each memo holds at most this many entries (then starts over). */
const MAX_ENTRIES = 4096;

export interface MemoStats {
  keyConversions: number;
  keyHits: number;
  verifications: number;
  verifyHits: number;
}

function keyInputId(input: unknown): string | undefined {
  if (typeof input === 'string') return `s:${input}`;
  if (typeof input !== 'object' || input === null || Buffer.isBuffer(input)) return undefined;
  const o = input as { key?: unknown; format?: unknown; type?: unknown };
  if (!Buffer.isBuffer(o.key) || typeof o.format !== 'string') return undefined;
  return `${o.format}:${String(o.type)}:${o.key.toString('hex')}`;
}

/**
 * Replaces crypto.createPublicKey and the one-shot crypto.verify (the calls
 * the TUF client makes) with memoised versions. Only successful
 * verifications are remembered; a failed one is checked again every time.
 */
export function shareSignatureChecks(): () => MemoStats {
  const stats: MemoStats = { keyConversions: 0, keyHits: 0, verifications: 0, verifyHits: 0 };
  const realCreate = crypto.createPublicKey;
  const realVerify = crypto.verify;
  const keys = new Map<string, KeyObject>();
  const keyIds = new WeakMap<KeyObject, string>();
  const verified = new Set<string>();
  const table = crypto as unknown as Record<string, unknown>;
  table['createPublicKey'] = (input: Parameters<typeof realCreate>[0]): KeyObject => {
    const id = keyInputId(input);
    if (id === undefined) return realCreate(input);
    const hit = keys.get(id);
    if (hit !== undefined) {
      stats.keyHits++;
      return hit;
    }
    stats.keyConversions++;
    const key = realCreate(input);
    if (keys.size >= MAX_ENTRIES) keys.clear();
    keys.set(id, key);
    keyIds.set(key, id);
    return key;
  };
  table['verify'] = (...a: unknown[]): unknown => {
    const [alg, data, key, sig, cb] = a;
    // The TUF client passes a KeyObject, or { key: KeyObject, ...options } (e.g. an RSA padding).
    const wrapped = typeof key === 'object' && key !== null && !(key instanceof KeyObject);
    const object = wrapped ? (key as { key?: unknown }).key : key;
    const options = wrapped ? JSON.stringify({ ...(key as object), key: undefined }) : '';
    const kid = object instanceof KeyObject ? keyIds.get(object) : undefined;
    if (
      cb !== undefined ||
      (alg !== undefined && alg !== null) ||
      kid === undefined ||
      !ArrayBuffer.isView(data) ||
      !ArrayBuffer.isView(sig)
    ) {
      return (realVerify as (...x: unknown[]) => unknown)(...a);
    }
    const bytes = (v: ArrayBufferView): Buffer => Buffer.from(v.buffer, v.byteOffset, v.byteLength);
    const memo = `${kid}|${options}|${createHash('sha256').update(bytes(data)).digest('hex')}|${bytes(sig).toString('hex')}`;
    if (verified.has(memo)) {
      stats.verifyHits++;
      return true;
    }
    stats.verifications++;
    const ok = (realVerify as (...x: unknown[]) => unknown)(...a);
    if (ok === true) {
      if (verified.size >= MAX_ENTRIES) verified.clear();
      verified.add(memo);
    }
    return ok;
  };
  syncBuiltinESMExports();
  return () => ({ ...stats });
}
