import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { LivegraftError } from '@livegraft/protocol';

/** What the validation guest needs from QEMU. */
export interface GuestSpec {
  vmlinuz: string;
  initrd: string;
  memoryMb: number;
  /** Extra QEMU arguments (a trigger's device, e.g. an e1000 with a crafted option ROM). */
  qemuArgs: readonly string[];
  /** Extra kernel command-line words. */
  append?: string;
  /** QEMU is killed at this point in time (ms since the epoch), whatever it is doing. */
  deadline: number;
  signal?: AbortSignal;
}

export interface GuestRun {
  code: number;
  out: string;
}

const READY = 'LIVEGRAFT_VALIDATION_READY';
const MARKER = '@@LGV@@';
/** Console text kept for the record (the protocol bounds what is sent). */
const MAX_CONSOLE = 512 * 1024;
/** Pending output kept while waiting for a command's marker. */
const MAX_PENDING = 4 * 1024 * 1024;

/**
 * A QEMU guest (TCG, no network, no disk) driven over its serial console: the
 * init shell runs one command at a time and ends each with a marker carrying
 * its exit status. Every wait is bounded by its own timeout and by the
 * guest's deadline, after which QEMU is killed.
 */
export class ValidationGuest {
  #proc: ChildProcessWithoutNullStreams | undefined;
  #pending = '';
  #console = '';
  #waiters: (() => void)[] = [];
  #seq = 0;
  #exit: number | null = null;
  #killTimer: NodeJS.Timeout | undefined;
  #abort = (): void => this.kill();
  bootMs = 0;

  constructor(readonly spec: GuestSpec) {}

  /** The serial console so far (its last MAX_CONSOLE bytes). */
  get console(): string {
    return this.#console;
  }

  async boot(timeoutMs: number): Promise<void> {
    const s = this.spec;
    const args = [
      ...['-accel', 'tcg', '-m', String(s.memoryMb), '-nodefaults', '-display', 'none', '-vga', 'none'],
      ...['-no-reboot', '-serial', 'stdio', '-monitor', 'none', '-net', 'none'],
      ...['-kernel', s.vmlinuz, '-initrd', s.initrd],
      ...s.qemuArgs,
      '-append',
      `console=ttyS0 panic=-1 quiet loglevel=4 ${s.append ?? ''}`.trim(),
    ];
    const started = Date.now();
    const proc = spawn('qemu-system-x86_64', args, { stdio: 'pipe' });
    this.#proc = proc;
    proc.on('error', (err) => {
      this.#feed(`\n[qemu could not start: ${err.message}]\n`);
      this.#exit = -1;
      this.#wake();
    });
    proc.on('close', (code, signal) => {
      this.#exit = code ?? (signal !== null ? 128 : -1);
      if (this.#killTimer !== undefined) clearTimeout(this.#killTimer);
      s.signal?.removeEventListener('abort', this.#abort);
      this.#wake();
    });
    proc.stdout.on('data', (d: Buffer) => this.#feed(d.toString('utf8')));
    proc.stderr.on('data', (d: Buffer) => this.#feed(d.toString('utf8')));
    // A guest that died (or was killed) before its 'close' arrives refuses input with EPIPE; its end is
    // reported by 'close', and a write it never read must not become an uncaught error.
    proc.stdin.on('error', () => undefined);
    s.signal?.addEventListener('abort', this.#abort, { once: true });
    this.#killTimer = setTimeout(() => this.kill(), Math.max(0, s.deadline - Date.now()));
    await this.#waitFor((b) => b.includes(READY), timeoutMs, 'booting the kernel');
    this.#pending = this.#pending.slice(this.#pending.indexOf(READY) + READY.length);
    await this.run('true', timeoutMs); // swallows the shell's banner
    this.bootMs = Date.now() - started;
  }

  #feed(text: string): void {
    const clean = text.replace(/\r/g, '');
    this.#console = (this.#console + clean).slice(-MAX_CONSOLE);
    this.#pending = (this.#pending + clean).slice(-MAX_PENDING);
    this.#wake();
  }

  #wake(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  async #waitFor(done: (pending: string) => boolean, timeoutMs: number, what: string): Promise<void> {
    const until = Math.min(Date.now() + timeoutMs, this.spec.deadline);
    while (!done(this.#pending)) {
      if (this.#exit !== null)
        throw new LivegraftError('VALIDATION_GUEST_LOST', `${what}: the guest stopped (QEMU exit ${this.#exit})`);
      if (this.spec.signal?.aborted === true) throw new LivegraftError('CANCELLED', `${what}: cancelled`);
      const left = until - Date.now();
      if (left <= 0) {
        this.kill();
        const why =
          until === this.spec.deadline ? 'the validation ran out of time' : `no answer within ${timeoutMs / 1000} s`;
        throw new LivegraftError('VALIDATION_TIMEOUT', `${what}: ${why}; the guest was killed`);
      }
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * Runs one shell command line and returns its output and exit status. It
   * runs in a subshell, so nothing it starts in the background is a child of
   * the console shell: that shell is busybox ash with echo off, which reads
   * its input with stdio, and a child's SIGCHLD arriving while it waits for
   * the next command interrupts the read; ash takes the EINTR for end of
   * input and exits, and the command sent next could be lost.
   */
  async run(cmd: string, timeoutMs: number): Promise<GuestRun> {
    const proc = this.#proc;
    if (proc === undefined || this.#exit !== null)
      throw new LivegraftError('VALIDATION_GUEST_LOST', `cannot run "${cmd}": the guest is not running`);
    const id = ++this.#seq;
    const re = new RegExp(`${MARKER} ${id} (-?\\d+)\\n`);
    proc.stdin.write(`( ${cmd} )\necho "${MARKER} ${id} $?"\n`);
    await this.#waitFor((b) => re.test(b), timeoutMs, `guest command "${cmd.slice(0, 120)}"`);
    const m = re.exec(this.#pending);
    if (m === null) throw new LivegraftError('INTERNAL', 'guest marker vanished');
    const out = this.#pending.slice(0, m.index);
    this.#pending = this.#pending.slice(m.index + m[0].length);
    return { code: Number(m[1]), out: out.replace(/^\n+/, '') };
  }

  /** Kills QEMU (idempotent). */
  kill(): void {
    if (this.#proc !== undefined && this.#exit === null) this.#proc.kill('SIGKILL');
  }

  /** Powers the guest off, killing it if it does not stop within `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.#proc === undefined || this.#exit !== null) return;
    this.#proc.stdin.write('poweroff -f\n');
    const until = Date.now() + timeoutMs;
    while (this.#exit === null && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    this.kill();
  }
}

/** The line the validation guest's init prints once its shell is ready. */
export const GUEST_READY_MARKER = READY;
