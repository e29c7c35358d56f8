import { readFileSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Type, type Static } from 'typebox';
import { KernelId, parseJson, validator } from '@livegraft/protocol';
import { fsyncDir, writeFileAtomic } from '../lib/fs-atomic.ts';
import type { InstallStep } from '../kernel/install.ts';

/**
 * The steps of one kernel change, in order. Each is persisted before the
 * agent moves on, so a restart knows how far a killed agent got:
 * intent (about to insmod) -> loaded (insmod returned) -> transitioned
 * (every task switched) -> old-removed (replaced modules rmmod'ed).
 */
export const JOURNAL_STEPS = [
  'intent',
  'loaded',
  'transitioned',
  'old-removed',
] as const satisfies readonly InstallStep[];
export type JournalStep = (typeof JOURNAL_STEPS)[number];

export const JournalEntry = Type.Object(
  {
    schema: Type.Literal(1),
    op: Type.Union([Type.Literal('apply'), Type.Literal('rollback'), Type.Literal('boot'), Type.Literal('unload')]),
    kernelId: KernelId,
    /** /proc/sys/kernel/random/boot_id when the change started: a different one at restart means a reboot. */
    bootId: Type.String({ maxLength: 64 }),
    /** The module being put in place; empty for unload. */
    module: Type.String({ maxLength: 64 }),
    level: Type.Integer({ minimum: 0 }),
    fromLevel: Type.Integer({ minimum: 0 }),
    step: Type.Union([
      Type.Literal('intent'),
      Type.Literal('loaded'),
      Type.Literal('transitioned'),
      Type.Literal('old-removed'),
    ]),
    startedAt: Type.String(),
    updatedAt: Type.String(),
  },
  { additionalProperties: false },
);
export type JournalEntry = Static<typeof JournalEntry>;
const journalValidator = validator(JournalEntry, 'journal');

/**
 * <state>/journal.json: present only while a kernel change is in flight (or
 * was interrupted). Its presence with an unfinished step is also the
 * "applying" marker of the crash-loop guard.
 */
export class JournalStore {
  readonly path: string;

  constructor(stateDir: string) {
    this.path = join(stateDir, 'journal.json');
  }

  /** A corrupt journal is moved aside and reported; the kernel is still the truth. */
  read(): { entry?: JournalEntry; warning?: string } {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      return { warning: `cannot read ${this.path}: ${(err as Error).message}` };
    }
    try {
      return { entry: parseJson(journalValidator, text, this.path) };
    } catch (err) {
      const aside = `${this.path}.corrupt`;
      try {
        renameSync(this.path, aside);
      } catch {
        // reported either way
      }
      return { warning: `${(err as Error).message}; moved to ${aside}` };
    }
  }

  write(entry: JournalEntry): void {
    journalValidator.parse(entry);
    writeFileAtomic(this.path, `${JSON.stringify(entry, null, 2)}\n`, 0o600);
  }

  clear(): void {
    rmSync(this.path, { force: true });
    fsyncDir(dirname(this.path));
  }
}
