import { createHash } from 'node:crypto';

/**
 * The `--root-sha256 HEX` an agent enrols with: the fingerprint of the server's
 * first root, read over loopback (out of band for the guest, as an operator
 * would read it from `livegraft keys fingerprint`).
 */
export async function rootPinArg(server: { url: string }): Promise<string> {
  const res = await fetch(`${server.url}/tuf/metadata/1.root.json`, { signal: AbortSignal.timeout(30_000) });
  if (!res.ok) throw new Error(`${server.url}/tuf/metadata/1.root.json answered HTTP ${res.status}`);
  const sha256 = createHash('sha256')
    .update(Buffer.from(await res.arrayBuffer()))
    .digest('hex');
  return `--root-sha256 ${sha256}`;
}
