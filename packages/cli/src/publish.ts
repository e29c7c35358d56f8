import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import {
  API_PREFIX,
  fixLines,
  LivegraftError,
  manifestValidator,
  parseJson,
  ValidationError,
  type PatchManifest,
  type PatchRecord,
} from '@livegraft/protocol';
import type { ApiClient } from './api.ts';

/** The manifest, validated; a bad one is refused here, naming the file and each bad field, before any upload. */
function readManifest(path: string, text: string): PatchManifest {
  try {
    return parseJson(manifestValidator, text, path);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(`patch manifest ${path}`, err.problems);
    throw err;
  }
}

/**
 * Uploads a built module and its manifest. The module is checked against the
 * manifest here first, so a mismatch is caught before anything is sent.
 */
export async function publishPatch(api: ApiClient, manifestPath: string, publish: boolean): Promise<PatchRecord> {
  const manifest = readManifest(manifestPath, await readFile(manifestPath, 'utf8'));
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

/** What `livegraft publish` prints for one level: the record, then each fix with its upstream commit, and what the build left out. */
export function publishedText(r: PatchRecord): string {
  const head = `${r.published ? 'published' : 'uploaded'} level ${r.level} for ${r.release} (kernel ${r.kernelId.slice(0, 12)}): ${r.fixIds.join(', ')}`;
  return [head, ...fixLines(r.fixes ?? [], r.skipped ?? [])].join('\n');
}
