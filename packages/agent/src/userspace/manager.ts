import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { LivegraftError, type UserspaceLibraryStatus, type UserspaceManifest } from '@livegraft/protocol';
import { applyPlan, loadBundle, revertPlan, type UserspaceBundle } from './bundle.ts';
import { runHelperBatch, type HelperResult } from './native.ts';
import { processEnded, processStartTime, sameProcess, scanProcesses, type MappedLibrary } from './scan.ts';
import { UserspaceStore, type LibraryState, type PatchedProcess, type UserspaceState } from './state.ts';

/** One chain of user-space operations per state directory in this process (the daemon's re-scan and check-ins). */
const chains = new Map<string, Promise<unknown>>();

/**
 * When a patched process was seen to end, per state directory, keyed
 * build-id/pid/start time (the daemon's death watch notes them between
 * re-scans; the guard decides on that time and forgets them). Bounded.
 */
const deaths = new Map<string, Map<string, number>>();
const MAX_DEATHS = 4096;

/** A patched process still within the crash-loop guard's window. */
export interface WatchedProcess {
  buildId: string;
  pid: number;
  startTime: number;
  patchedAtMs: number;
}

/** Refusals that a later pass may not meet again. */
const TRANSIENT: ReadonlySet<string> = new Set(['busy', 'timeout']);

export interface UserspaceDeps {
  stateDir: string;
  procRoot?: string;
  /** Path of the native helper. */
  helper: string;
  now?: () => number;
  log?: (msg: string) => void;
  /** A patched process that is gone within this long after patching halts the level (crash-loop guard). */
  crashWindowMs?: number;
  /** Safety-check attempts per process before it is refused as busy. */
  attempts?: number;
  /** Helper processes run at once. */
  concurrency?: number;
  /** Processes one helper process handles, one after the other (default 64). */
  batch?: number;
  /** Only these processes are looked at (a canary, or a test); default: every process. */
  pids?: readonly number[];
}

/** What happened to one process in one pass. */
export interface ProcessOutcome {
  pid: number;
  comm: string;
  action: 'patched' | 'restored' | 'refused' | 'failed';
  level: number;
  stopUs: number;
  /** Of stopUs: waiting for the threads to stop. */
  stoppingUs?: number;
  /** The longest single stop of the process (stopUs is the sum of its stops). */
  holdUs?: number;
  reason?: string;
  message?: string;
}

export interface LibraryStatus {
  buildId: string;
  soname: string;
  level: number;
  cves: string[];
  halted?: LibraryState['halted'];
  patched: PatchedProcess[];
  refused: LibraryState['refused'];
  /** Processes mapping this build that are neither patched nor refused. */
  unpatched: { pid: number; comm: string; deleted: boolean }[];
}

/**
 * The host side of user-space live patching: which processes map a library
 * build that has a level, applying and undoing it in each through the native
 * helper, the crash-loop guard, and status.
 */
export class UserspaceManager {
  readonly store: UserspaceStore;
  readonly procRoot: string;
  readonly now: () => number;
  readonly crashWindowMs: number;
  private readonly bundles = new Map<string, UserspaceBundle>();

  constructor(readonly deps: UserspaceDeps) {
    this.store = new UserspaceStore(deps.stateDir);
    this.procRoot = deps.procRoot ?? '/proc';
    this.now = deps.now ?? Date.now;
    this.crashWindowMs = deps.crashWindowMs ?? 10_000;
  }

  /** Copies a level (manifest + code object) into the state directory and makes it the wanted level of its build. */
  install(manifestPath: string): UserspaceManifest {
    const b = loadBundle(manifestPath);
    const m = b.manifest;
    const dir = this.store.levelDir(m.library.buildId, m.level);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    copyFileSync(manifestPath, join(dir, 'manifest.json'));
    copyFileSync(join(dirname(manifestPath), m.code.file), join(dir, basename(m.code.file)));
    const s = this.store.load();
    const lib = (s.libraries[m.library.buildId] ??= { soname: m.library.soname, level: 0, patched: [], refused: [] });
    if (lib.halted !== undefined && lib.halted.level !== m.level) delete lib.halted;
    lib.level = m.level;
    lib.refused = [];
    this.store.save(s);
    this.bundles.delete(`${m.library.buildId}/${m.level}`);
    return m;
  }

  /**
   * Runs `fn` after every other operation on this state directory that
   * started in this process: the daemon's re-scan and the check-in's levels
   * never drive the helper on the same process at once.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const prev = chains.get(this.store.dir) ?? Promise.resolve();
    const run = prev.then(fn, fn);
    const tail = run.then(
      () => undefined,
      () => undefined,
    );
    chains.set(this.store.dir, tail);
    void tail.then(() => {
      if (chains.get(this.store.dir) === tail) chains.delete(this.store.dir);
    });
    return run;
  }

  bundle(buildId: string, level: number): UserspaceBundle {
    const key = `${buildId}/${level}`;
    const cached = this.bundles.get(key);
    if (cached !== undefined) return cached;
    const path = join(this.store.levelDir(buildId, level), 'manifest.json');
    if (!existsSync(path))
      throw new LivegraftError('USERSPACE_NO_LEVEL', `level ${level} of build ${buildId} is not installed`);
    const b = loadBundle(path);
    this.bundles.set(key, b);
    return b;
  }

  /** Install a level and apply it to every process that maps its build. */
  async apply(manifestPath: string): Promise<ProcessOutcome[]> {
    const m = this.install(manifestPath);
    return this.reconcile(m.library.buildId);
  }

  /** Restore every process of one build (or of every build) and want no level for it. */
  async rollback(buildId?: string): Promise<ProcessOutcome[]> {
    const s = this.store.load();
    const ids = buildId === undefined ? Object.keys(s.libraries) : [buildId];
    for (const id of ids) {
      const lib = s.libraries[id];
      if (lib === undefined) throw new LivegraftError('USERSPACE_NO_LEVEL', `no user-space level for build ${id}`);
      lib.level = 0;
      lib.refused = [];
    }
    this.store.save(s);
    const out: ProcessOutcome[] = [];
    for (const id of ids) out.push(...(await this.reconcile(id)));
    return out;
  }

  /** Lets a halted build be patched again. */
  unhalt(buildId: string): void {
    const s = this.store.load();
    const lib = s.libraries[buildId];
    if (lib?.halted === undefined) throw new LivegraftError('USERSPACE_NOT_HALTED', `build ${buildId} is not halted`);
    delete lib.halted;
    lib.refused = [];
    this.store.save(s);
  }

  /**
   * Brings every process of the build(s) to the wanted level: patches new
   * ones (processes started later from the same old build), moves older
   * levels, restores at level 0. Runs the crash-loop guard first.
   */
  async reconcile(buildId?: string): Promise<ProcessOutcome[]> {
    const s = this.store.load();
    const ids = buildId === undefined ? Object.keys(s.libraries) : [buildId];
    if (ids.length === 0) return [];
    this.guard(s, ids);
    this.store.save(s);
    const skip = new Set([process.pid]);
    const found = scanProcesses({
      procRoot: this.procRoot,
      buildIds: new Set(ids),
      skipPids: skip,
      pids: this.deps.pids,
    });
    const out: ProcessOutcome[] = [];
    for (const id of ids) {
      const lib = s.libraries[id];
      if (lib === undefined) continue;
      const procs = found.filter((f) => f.buildId === id);
      out.push(...(await this.reconcileLibrary(s, id, lib, procs)));
    }
    return out;
  }

  /**
   * The crash-loop guard: a patched process gone soon after patching halts
   * its level for that build. "Soon" is judged on when the process was seen
   * to end (noted by the death watch), else on now.
   */
  private guard(s: UserspaceState, ids: string[]): boolean {
    const now = this.now();
    const seen = deaths.get(this.store.dir);
    let halted = false;
    for (const id of ids) {
      const lib = s.libraries[id];
      if (lib === undefined) continue;
      const alive: PatchedProcess[] = [];
      for (const p of lib.patched) {
        if (!processEnded(this.procRoot, p.pid, p.startTime)) {
          alive.push(p);
          continue;
        }
        const endedAt = seen?.get(`${id}/${p.pid}/${p.startTime}`) ?? now;
        const after = endedAt - Date.parse(p.patchedAt);
        if (after <= this.crashWindowMs && lib.halted === undefined && lib.level === p.level) {
          lib.halted = { level: p.level, pid: p.pid, comm: p.comm, at: new Date(endedAt).toISOString() };
          halted = true;
          this.deps.log?.(
            `user-space level ${p.level} of ${lib.soname} (${id}) halted: process ${p.pid} (${p.comm}) ended ${Math.round(after / 1000)} s after it was patched`,
          );
        }
      }
      lib.patched = alive;
      lib.refused = lib.refused.filter((r) => sameProcess(this.procRoot, r.pid, r.startTime));
      if (seen !== undefined) for (const key of [...seen.keys()]) if (key.startsWith(`${id}/`)) seen.delete(key);
    }
    if (seen?.size === 0) deaths.delete(this.store.dir);
    return halted;
  }

  /** Notes when a patched process was seen to end, for the next guard. */
  noteEnded(p: WatchedProcess, at: number): void {
    let seen = deaths.get(this.store.dir);
    if (seen === undefined) deaths.set(this.store.dir, (seen = new Map()));
    if (seen.size >= MAX_DEATHS) seen.delete(seen.keys().next().value!);
    seen.set(`${p.buildId}/${p.pid}/${p.startTime}`, at);
  }

  /** Runs the crash-loop guard over every build now (no scan, no helper); true when it halted a level. */
  guardNow(): boolean {
    const s = this.store.load();
    const halted = this.guard(s, Object.keys(s.libraries));
    this.store.save(s);
    return halted;
  }

  /**
   * The patched processes whose end would halt their level (patched at the
   * wanted level, build not halted, within the window), newest first, at most `max`.
   */
  watchList(max: number): WatchedProcess[] {
    const now = this.now();
    const out: WatchedProcess[] = [];
    for (const [buildId, lib] of Object.entries(this.store.load().libraries)) {
      if (lib.halted !== undefined) continue;
      for (const p of lib.patched) {
        const patchedAtMs = Date.parse(p.patchedAt);
        if (p.level === lib.level && now - patchedAtMs <= this.crashWindowMs)
          out.push({ buildId, pid: p.pid, startTime: p.startTime, patchedAtMs });
      }
    }
    return out.sort((a, b) => b.patchedAtMs - a.patchedAtMs).slice(0, max);
  }

  private async reconcileLibrary(
    s: UserspaceState,
    id: string,
    lib: LibraryState,
    procs: MappedLibrary[],
  ): Promise<ProcessOutcome[]> {
    const toRevert: PatchedProcess[] = [];
    const toApply: MappedLibrary[] = [];
    const applying = lib.level > 0 && lib.halted === undefined;
    for (const proc of procs) {
      const rec = lib.patched.find((p) => p.pid === proc.pid && p.startTime === proc.startTime);
      if (rec !== undefined) {
        if (rec.level === lib.level) continue;
        toRevert.push(rec); // another level is wanted, or none
        continue;
      }
      if (!applying) continue;
      // A lasting refusal (seccomp, not dumpable, ...) is not tried again at this level; a busy process is, next pass.
      const lasting = (r: LibraryState['refused'][number]) =>
        r.pid === proc.pid && r.startTime === proc.startTime && r.level === lib.level && !TRANSIENT.has(r.reason);
      if (lib.refused.some(lasting)) continue;
      toApply.push(proc);
    }
    const out = await this.batched(toRevert, (chunk) => this.revertBatch(id, lib, chunk));
    if (applying) {
      const moved = new Set(out.filter((o) => o.action === 'restored').map((o) => o.pid));
      for (const rec of toRevert) {
        const proc = procs.find((p) => p.pid === rec.pid && p.startTime === rec.startTime);
        if (moved.has(rec.pid) && proc !== undefined) toApply.push(proc);
      }
      out.push(...(await this.batched(toApply, (chunk) => this.applyBatch(id, lib, chunk))));
    }
    this.store.save(s);
    return out;
  }

  /** Runs `fn` over chunks of `items`, `concurrency` helper processes at a time. */
  private async batched<T>(items: T[], fn: (chunk: T[]) => Promise<ProcessOutcome[]>): Promise<ProcessOutcome[]> {
    const size = this.deps.batch ?? 64;
    const chunks: T[][] = [];
    for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
    const out: ProcessOutcome[] = [];
    let next = 0;
    const width = Math.max(1, this.deps.concurrency ?? 2);
    await Promise.all(
      Array.from({ length: Math.min(width, chunks.length) }, async () => {
        while (next < chunks.length) out.push(...(await fn(chunks[next++]!)));
      }),
    );
    return out;
  }

  private async applyBatch(id: string, lib: LibraryState, procs: MappedLibrary[]): Promise<ProcessOutcome[]> {
    const b = this.bundle(id, lib.level);
    const plans = procs.map((proc) => applyPlan(b, proc.pid, proc.base, this.deps.attempts));
    const results = await runHelperBatch(this.deps.helper, 'apply', plans);
    return procs.map((proc, i) => {
      const r = results[i]!;
      lib.refused = lib.refused.filter((x) => x.pid !== proc.pid);
      if (r.ok && r.op === 'apply') {
        const rec: PatchedProcess = {
          pid: proc.pid,
          startTime: proc.startTime,
          comm: proc.comm,
          base: proc.base,
          path: proc.path,
          deleted: proc.deleted,
          level: lib.level,
          code: r.code,
          functions: r.functions,
          patchedAt: new Date(this.now()).toISOString(),
          stopUs: r.stopUs,
        };
        lib.patched.push(rec);
        this.store.append({ op: 'patched', buildId: id, process: rec });
        return {
          pid: proc.pid,
          comm: proc.comm,
          action: 'patched',
          level: lib.level,
          stopUs: r.stopUs,
          stoppingUs: r.stoppingUs ?? 0,
          holdUs: r.holdUs ?? r.stopUs,
        };
      }
      return this.refusal(lib, proc.pid, proc.startTime, proc.comm, r);
    });
  }

  private async revertBatch(id: string, lib: LibraryState, recs: PatchedProcess[]): Promise<ProcessOutcome[]> {
    const plans = recs.map((rec) => revertPlan(this.bundle(id, rec.level).manifest, rec, this.deps.attempts));
    const results = await runHelperBatch(this.deps.helper, 'revert', plans);
    return recs.map((rec, i): ProcessOutcome => {
      const r = results[i]!;
      if (r.ok) {
        lib.patched = lib.patched.filter((p) => p !== rec);
        this.store.append({ op: 'restored', buildId: id, pid: rec.pid, startTime: rec.startTime });
        return {
          pid: rec.pid,
          comm: rec.comm,
          action: 'restored',
          level: rec.level,
          stopUs: r.stopUs,
          stoppingUs: r.stoppingUs ?? 0,
          holdUs: r.holdUs ?? r.stopUs,
          ...(r.op === 'revert' && !r.unmapped && r.message !== undefined ? { message: r.message } : {}),
        };
      }
      if (r.reason === 'exited') lib.patched = lib.patched.filter((p) => p !== rec);
      return {
        pid: rec.pid,
        comm: rec.comm,
        action: 'failed',
        level: rec.level,
        stopUs: r.stopUs,
        reason: r.reason,
        message: r.message,
      };
    });
  }

  private refusal(lib: LibraryState, pid: number, startTime: number, comm: string, r: HelperResult): ProcessOutcome {
    if (r.ok) throw new Error('unreachable');
    if (r.reason !== 'exited') {
      lib.refused.push({
        pid,
        startTime,
        comm,
        level: lib.level,
        reason: r.reason,
        step: r.step,
        errno: r.errno,
        message: r.message,
        at: new Date(this.now()).toISOString(),
      });
    }
    return { pid, comm, action: 'refused', level: lib.level, stopUs: r.stopUs, reason: r.reason, message: r.message };
  }

  /** Per library build: level, CVEs, patched, refused (with reasons) and unpatched processes, from a live scan. */
  status(): LibraryStatus[] {
    const s = this.store.load();
    const ids = Object.keys(s.libraries);
    if (ids.length === 0) return [];
    const found = scanProcesses({
      procRoot: this.procRoot,
      buildIds: new Set(ids),
      skipPids: new Set([process.pid]),
      pids: this.deps.pids,
    });
    return ids.map((id) => {
      const lib = s.libraries[id]!;
      const alive = (p: { pid: number; startTime: number }) => processStartTime(this.procRoot, p.pid) === p.startTime;
      const patched = lib.patched.filter(alive);
      const refused = lib.refused.filter(alive);
      const unpatched = found
        .filter((f) => f.buildId === id)
        .filter((f) => !patched.some((p) => p.pid === f.pid) && !refused.some((r) => r.pid === f.pid))
        .map((f) => ({ pid: f.pid, comm: f.comm, deleted: f.deleted }));
      let cves: string[] = [];
      if (lib.level > 0) {
        try {
          cves = this.bundle(id, lib.level).manifest.cves;
        } catch {
          cves = [];
        }
      }
      return {
        buildId: id,
        soname: lib.soname,
        level: lib.level,
        cves,
        ...(lib.halted ? { halted: lib.halted } : {}),
        patched,
        refused,
        unpatched,
      };
    });
  }

  /** The check-in report (protocol UserspaceLibraryStatus). */
  report(): UserspaceLibraryStatus[] {
    return this.status().map((l) => {
      const refusals: Record<string, number> = {};
      for (const r of l.refused) refusals[r.reason] = (refusals[r.reason] ?? 0) + 1;
      return {
        buildId: l.buildId,
        soname: l.soname,
        level: l.level,
        cves: l.cves,
        patched: l.patched.length,
        unpatched: l.unpatched.length,
        refused: l.refused.length,
        ...(l.refused.length > 0 ? { refusals } : {}),
        ...(l.halted !== undefined ? { halted: true } : {}),
      };
    });
  }
}
