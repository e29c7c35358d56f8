import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { appendFileSync } from 'node:fs';

export interface GuestOptions {
  vmlinuz: string;
  initrd: string;
  /** Raw disk image that survives reboots (mounted at /var/lib/livegraft). */
  disk: string;
  /** Host loopback port the guest reaches as http://10.0.2.100:80; omit for no network at all. */
  serverPort?: number;
  /** Extra kernel command-line words. */
  append?: string;
  memoryMb?: number;
  /** Everything the serial console printed goes here too (for failure diagnosis). */
  onConsole?: (text: string) => void;
  /** File the whole console transcript is appended to, across reboots. */
  logFile?: string;
  /** Extra QEMU arguments (e.g. a device with a crafted option ROM). */
  qemuArgs?: string[];
}

export interface RunResult {
  code: number;
  out: string;
}

/**
 * Time a TCG guest gets to reach the shell prompt of our init. Init runs the
 * agent's boot re-apply first (a module load and a transition, each under the
 * agent's own bounds): beside three other suites and a CPU hog, a boot with a
 * level to re-apply took longer than the 120 s this used to be. QEMU ending
 * early still ends the wait at once.
 */
export const BOOT_TIMEOUT_MS = 600_000;
const PIPE = fileURLToPath(new URL('./tcp-pipe.mjs', import.meta.url));
const READY_MARKER = 'LIVEGRAFT_GUEST_READY';
/** Printed by the guest's init when its console shell ended and a new one was started. */
const SHELL_RESTARTED = 'LIVEGRAFT_GUEST_SHELL_RESTARTED';
const MARKER = '@@LG@@';
/** Console text kept for diagnosis. */
const MAX_TRANSCRIPT = 256 * 1024;

/**
 * One QEMU guest driven over its serial console: our /init ends in a shell on
 * ttyS0 with echo off, and each command is followed by a marker carrying its
 * exit status.
 */
export class Guest {
  private proc: ChildProcessWithoutNullStreams | undefined;
  private buffer = '';
  private transcriptText = '';
  private waiters: Array<() => void> = [];
  private seq = 0;
  /** A command went unanswered past its bound: the shell may still be busy with it. */
  private wedged = false;
  private exited: Promise<number> | undefined;
  bootMs = 0;

  constructor(readonly options: GuestOptions) {}

  get transcript(): string {
    return this.transcriptText;
  }

  async boot(): Promise<void> {
    const o = this.options;
    const net =
      o.serverPort === undefined
        ? []
        : [
            '-netdev',
            // A "tcp:" guestfwd target is one chardev stream shared by every guest
            // connection, so a second HTTP connection stalls; "cmd:" starts a
            // pipe to the loopback server per connection.
            `user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:${process.execPath} ${PIPE} ${o.serverPort}`,
            '-device',
            'e1000,netdev=n0',
          ];
    const args = [
      '-accel',
      'tcg',
      '-m',
      String(o.memoryMb ?? 1024),
      '-nodefaults',
      '-display',
      'none',
      '-vga',
      'none',
      '-no-reboot',
      '-serial',
      'stdio',
      '-monitor',
      'none',
      '-kernel',
      o.vmlinuz,
      '-initrd',
      o.initrd,
      '-drive',
      `file=${o.disk},format=raw,if=virtio`,
      ...net,
      ...(o.qemuArgs ?? []),
      '-append',
      `console=ttyS0 panic=-1 quiet loglevel=3 ${o.append ?? ''}`.trim(),
    ];
    const started = Date.now();
    const proc = spawn('qemu-system-x86_64', args, { stdio: 'pipe' });
    if (o.logFile) appendFileSync(o.logFile, `\n==== qemu-system-x86_64 ${args.join(' ')}\n`);
    proc.on('close', (code, signal) => {
      if (o.logFile) appendFileSync(o.logFile, `\n==== QEMU exited: code ${code} signal ${signal}\n`);
    });
    this.proc = proc;
    this.wedged = false;
    this.buffer = '';
    this.exited = new Promise((resolve) => proc.on('close', (code) => resolve(code ?? -1)));
    void this.exited.then(() => this.wake());
    proc.stdout.on('data', (d: Buffer) => this.feed(d.toString('utf8')));
    proc.stderr.on('data', (d: Buffer) => this.feed(d.toString('utf8')));
    // A guest that died before its 'close' arrives refuses input with EPIPE; 'close' reports its end.
    proc.stdin.on('error', () => undefined);
    await this.waitFor((b) => b.includes(READY_MARKER), BOOT_TIMEOUT_MS, 'guest boot');
    this.buffer = this.buffer.slice(this.buffer.indexOf(READY_MARKER) + READY_MARKER.length);
    this.bootMs = Date.now() - started;
    await this.run('true'); // swallow the shell's banner
  }

  private feed(text: string): void {
    const clean = text.replace(/\r/g, '');
    this.buffer += clean;
    this.transcriptText = (this.transcriptText + clean).slice(-MAX_TRANSCRIPT);
    this.options.onConsole?.(clean);
    if (this.options.logFile) appendFileSync(this.options.logFile, clean);
    this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  private async waitFor(pred: (buf: string) => boolean, timeoutMs: number, what: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this.buffer)) {
      const restarted = this.buffer.indexOf(SHELL_RESTARTED);
      if (restarted >= 0) {
        this.buffer = this.buffer.slice(restarted + SHELL_RESTARTED.length);
        throw new Error(
          `${what}: the guest's console shell exited and init started a new one; this command's result is lost. ` +
            `Console:\n${this.transcriptText.slice(-3000)}`,
        );
      }
      if (this.proc?.exitCode !== null && this.proc?.exitCode !== undefined) {
        throw new Error(`${what}: QEMU exited (${this.proc.exitCode}). Console:\n${this.transcriptText.slice(-3000)}`);
      }
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`${what}: no answer within ${timeoutMs} ms. Console:\n${this.transcriptText.slice(-3000)}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /**
   * Runs one shell command line in the guest and returns its output and exit
   * status, waiting at most `timeoutMs`. The command reads /dev/null and
   * writes to its own open of the console: a program killed while it had the
   * console non-blocking (Node does that) then cannot leave the shell's own
   * input or output non-blocking (see init.sh).
   *
   * It runs in a subshell, so the console shell never has a child that
   * outlives the command: what it starts in the background belongs to the
   * subshell, then to init. The console shell is an interactive busybox ash
   * with echo off, which reads its input with stdio (not its line editor);
   * a SIGCHLD from a background child ending while it waits for the next
   * command interrupts that read, and ash takes the EINTR for end of input
   * and exits 0. That was the shell restart seen when a test killed the agent
   * it had started in the background.
   */
  async run(cmd: string, timeoutMs = 60_000): Promise<RunResult> {
    if (!this.proc) throw new Error('guest not booted');
    const id = ++this.seq;
    const re = new RegExp(`${MARKER} ${id} (-?\\d+)\\n`);
    // One line, so the shell prints no continuation prompt into the output.
    const body = cmd.trim().replace(/;+$/, '');
    const group = `( ${body} )`;
    this.proc.stdin.write(`${group} < /dev/null > /dev/console 2>&1; echo "${MARKER} ${id} $?"\n`);
    const shown = cmd.length > 300 ? `${cmd.slice(0, 300)}…` : cmd;
    try {
      await this.waitFor((b) => re.test(b), timeoutMs, `guest command "${shown}" (bounded at ${timeoutMs} ms)`);
    } catch (err) {
      // Unanswered in time: the guest's shell may still be running it, and every later command would queue
      // behind it. The guest is then as good as lost: the next test gets a fresh one (reviveIfLost).
      if (/no answer within/.test(String(err))) this.wedged = true;
      throw err;
    }
    const m = re.exec(this.buffer);
    if (!m) throw new Error('unreachable');
    const out = this.buffer.slice(0, m.index);
    this.buffer = this.buffer.slice(m.index + m[0].length);
    return { code: Number(m[1]), out: out.replace(/^\n+/, '') };
  }

  /** Runs a command that must succeed; returns its trimmed output. */
  async sh(cmd: string, timeoutMs?: number): Promise<string> {
    const r = await this.run(cmd, timeoutMs);
    if (r.code !== 0) throw new Error(`guest command "${cmd}" exited ${r.code}:\n${r.out}`);
    return r.out.trim();
  }

  /**
   * Whether QEMU is gone (a panic, a reset, a power-off), or its shell left a
   * command unanswered past its bound (it may still be running it).
   */
  get lost(): boolean {
    return this.wedged || this.proc === undefined || this.proc.exitCode !== null || this.proc.signalCode !== null;
  }

  /**
   * Boots a fresh guest on the same disk if this one was lost, so one test
   * that loses its guest does not fail every later test. A guest whose shell
   * is still busy is stopped first (no clean shutdown: its shell cannot take
   * one). Returns whether it had to.
   */
  async reviveIfLost(): Promise<boolean> {
    if (!this.lost) return false;
    const why = this.wedged ? 'left a command unanswered' : 'lost';
    if (this.options.logFile) appendFileSync(this.options.logFile, `\n==== guest ${why}; booting a fresh one\n`);
    if (this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null) {
      this.proc.kill('SIGKILL');
      await this.waitExit(30_000);
    }
    await this.boot();
    return true;
  }

  /**
   * A power cut: an immediate reset through sysrq (no sync, no unmount),
   * then a fresh boot on the same disk. QEMU runs with -no-reboot, so the
   * reset ends it.
   */
  async powerCut(): Promise<void> {
    this.proc?.stdin.write('echo 1 > /proc/sys/kernel/sysrq; echo b > /proc/sysrq-trigger\n');
    await this.waitExit(60_000);
    await this.boot();
  }

  /** Reboots the guest: QEMU runs with -no-reboot, so this is a power cycle of the same disk. */
  async reboot(): Promise<void> {
    this.proc?.stdin.write('sync; reboot -f\n');
    await this.waitExit(60_000);
    await this.boot();
  }

  async waitExit(timeoutMs: number): Promise<number> {
    if (!this.exited) return 0;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<number>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`guest did not stop within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async shutdown(): Promise<void> {
    if (!this.proc || this.proc.exitCode !== null) return;
    this.proc.stdin.write('sync; poweroff -f\n');
    try {
      await this.waitExit(30_000);
    } catch {
      this.proc.kill('SIGKILL');
    }
  }
}
