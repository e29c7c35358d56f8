import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { API_PREFIX, LivegraftError, manifestValidator, parseJson, type PatchRecord } from '@livegraft/protocol';
import type { ApiClient } from './api.ts';

/**
 * Uploads a built module and its manifest. The module is checked against the
 * manifest here first, so a mismatch is caught before anything is sent.
 */
export async function publishPatch(api: ApiClient, manifestPath: string, publish: boolean): Promise<PatchRecord> {
  const manifest = parseJson(manifestValidator, await readFile(manifestPath, 'utf8'), manifestPath);
  const modulePath = join(dirname(manifestPath), manifest.module.file);
  const bytes = await readFile(modulePath).catch((err: NodeJS.ErrnoException) => {
    throw new LivegraftError('MODULE_MISSING', `${modulePath}: ${err.message}`);
  });
  const sha = createHash('sha256').update(bytes).digest('hex');
  if (sha !== manifest.module.sha256 || bytes.length !== manifest.module.size) {
    throw new LivegraftError(
      'MODULE_HASH_MISMATCH',
      `${modulePath} does not match its manifest (sha256 ${sha}, ${bytes.length} bytes; manifest says ${manifest.module.sha256}, ${manifest.module.size} bytes)`,
    );
  }
  await api.upload(`${API_PREFIX}/modules/${sha}`, bytes);
  return api.request<PatchRecord>('POST', `${API_PREFIX}/patches`, { json: { manifest, publish } });
}
