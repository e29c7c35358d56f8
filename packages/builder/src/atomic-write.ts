import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** Writes `data` to a temp file beside `file`, fsyncs it and renames it into place. */
async function writeTemp(file: string, data: Uint8Array | string): Promise<string> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(6).toString('hex')}.tmp`);
  const handle = await open(tmp, 'wx', 0o644);
  try {
    await handle.writeFile(data);
    await handle.sync();
  } catch (err) {
    await handle.close();
    await rm(tmp, { force: true });
    throw err;
  }
  await handle.close();
  return tmp;
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * Puts several files in place with as little exposure as a POSIX directory
 * allows: every temp file is complete and synced before the first rename, and
 * the files are renamed in order (so the last one, the manifest, appearing
 * means the others are there too).
 */
export async function writeFilesAtomically(
  files: readonly { file: string; data: Uint8Array | string }[],
): Promise<void> {
  const temps: string[] = [];
  try {
    for (const f of files) temps.push(await writeTemp(f.file, f.data));
  } catch (err) {
    await Promise.all(temps.map((t) => rm(t, { force: true })));
    throw err;
  }
  const done: string[] = [];
  try {
    for (const [i, f] of files.entries()) {
      await rename(temps[i] ?? '', f.file);
      done.push(f.file);
    }
  } catch (err) {
    // Never leave a module without its manifest (or half a set) behind.
    await Promise.all([...temps.map((t) => rm(t, { force: true })), ...done.map((d) => rm(d, { force: true }))]);
    throw err;
  }
  for (const dir of new Set(files.map((f) => path.dirname(f.file)))) await syncDir(dir);
}
