import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { LivegraftError } from '@livegraft/protocol';

/** Where the edit journal and the pristine copies live inside the tree. */
const JOURNAL = '.livegraft-edit.json';
const BACKUP_DIR = '.livegraft-pristine';

interface Journal {
  files: { path: string; backup: string | null }[];
}

async function exists(p: string): Promise<boolean> {
  try {
    await readFile(p, { flag: 'r' }).then(() => undefined);
    return true;
  } catch {
    return false;
  }
}

async function restore(treeDir: string, journal: Journal): Promise<void> {
  for (const f of journal.files) {
    const target = path.join(treeDir, f.path);
    if (f.backup === null) await rm(target, { force: true });
    else await copyFile(path.join(treeDir, BACKUP_DIR, f.backup), target);
  }
  await rm(path.join(treeDir, BACKUP_DIR), { recursive: true, force: true });
  await rm(path.join(treeDir, JOURNAL), { force: true });
}

/**
 * Puts back any file an interrupted build left patched. Run while holding
 * the tree's lock, before using the tree.
 */
export async function repairTree(treeDir: string): Promise<boolean> {
  let text: string;
  try {
    text = await readFile(path.join(treeDir, JOURNAL), 'utf8');
  } catch {
    return false;
  }
  let journal: Journal;
  try {
    journal = JSON.parse(text) as Journal;
  } catch (err) {
    throw new LivegraftError(
      'KERNEL_TREE_DAMAGED',
      `${path.join(treeDir, JOURNAL)} is unreadable; remove this kernel build's cache directory to prepare it again`,
      { cause: err },
    );
  }
  await restore(treeDir, journal);
  return true;
}

/**
 * Runs fn with the listed tree files saved first and restored afterwards,
 * whatever fn does to them. A journal written before the first change lets
 * repairTree() finish the restore after a crash.
 */
export async function withTreeEdits<T>(treeDir: string, files: readonly string[], fn: () => Promise<T>): Promise<T> {
  await repairTree(treeDir);
  const journal: Journal = { files: [] };
  await mkdir(path.join(treeDir, BACKUP_DIR), { recursive: true });
  for (const [i, f] of [...new Set(files)].entries()) {
    const src = path.join(treeDir, f);
    if (await exists(src)) {
      await copyFile(src, path.join(treeDir, BACKUP_DIR, String(i)));
      journal.files.push({ path: f, backup: String(i) });
    } else {
      journal.files.push({ path: f, backup: null });
    }
  }
  await writeFile(path.join(treeDir, JOURNAL), JSON.stringify(journal));
  try {
    return await fn();
  } finally {
    await restore(treeDir, journal);
  }
}
