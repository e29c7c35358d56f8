import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { LivegraftError, StatusExit } from '@livegraft/protocol';
import { Agent, type AgentDeps } from '../operations/agent.ts';
import type { FetchFn } from '../delivery/client.ts';
import { systemClock, type Clock } from '../lib/clock.ts';
import { DEFAULT_CONFIG_PATH, DEFAULT_STATE_DIR } from '../state/config.ts';
import { REGISTRATION_KEY_ENV, registrationKeyFrom } from '../delivery/enrol.ts';
import { Daemon } from './daemon.ts';
import { DEFAULT_KMSG_PATH } from '../kernel/kmsg.ts';
import { KernelEventQueue } from '../kernel/kmsg-watch.ts';
import { createKmodLoader, type ModuleLoader } from '../kernel/loader.ts';
import { jsonLogger, textLogger, type Logger } from '../lib/log.ts';
import { checkJson, errorJson, errorLine, formatCheck, formatOp, formatStatus, opJson, toJson } from './output.ts';
import { AGENT_VERSION } from '../lib/version.ts';
import {
  formatUserspaceStatus,
  registerUserspaceCommands,
  userspaceStatusOf,
  userspaceWatch,
} from '../userspace/cli.ts';

export interface CliIo {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  env: Record<string, string | undefined>;
}

/** Everything the CLI would otherwise take from the machine, for tests. */
export interface CliOverrides {
  loader?: ModuleLoader;
  clock?: Clock;
  fetch?: FetchFn;
  /** Agent dependencies tests replace (delivery bounds, a full disk, a stop at a journal step). */
  agent?: Pick<AgentDeps, 'deliveryLimits' | 'writeChunk' | 'journalHook'>;
  /** Registers SIGUSR1/SIGTERM/SIGINT handlers for `run`; returns an unregister function. */
  onSignals?: (handlers: { wake: () => void; stop: () => void }) => () => void;
}

const processSignals: NonNullable<CliOverrides['onSignals']> = ({ wake, stop }) => {
  process.on('SIGUSR1', wake);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  return () => {
    process.off('SIGUSR1', wake);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
  };
};

/**
 * Fault injection for power-cut tests on a real kernel: the agent stops
 * itself (SIGSTOP) right after this journal step is on disk, so a test can
 * reset the machine at exactly that point. Unset in normal use.
 */
export const STOP_AFTER_STEP_ENV = 'LIVEGRAFT_STOP_AFTER_STEP';

function stopAfterStep(step: string | undefined): Pick<AgentDeps, 'journalHook'> {
  if (step === undefined || step === '') return {};
  return {
    journalHook: (s) => {
      if (s === step) process.kill(process.pid, 'SIGSTOP');
    },
  };
}

function positiveInt(what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer`);
    return n;
  };
}

/**
 * Runs one `livegraft-agent` invocation and returns its exit code. The only
 * process.exit is in bin.ts, so this is testable in-process.
 */
export async function runCli(argv: string[], io: CliIo, overrides: CliOverrides = {}): Promise<number> {
  let exitCode: number = StatusExit.ERROR;
  let json = false;
  const program = new Command('livegraft-agent')
    .description('Livegraft host agent: applies cumulative kernel live patches from a Livegraft server')
    .version(AGENT_VERSION)
    .option(
      '--config <path>',
      'agent config file (env LIVEGRAFT_CONFIG)',
      io.env['LIVEGRAFT_CONFIG'] ?? DEFAULT_CONFIG_PATH,
    )
    .option(
      '--state-dir <dir>',
      'state and module cache (env LIVEGRAFT_STATE_DIR)',
      io.env['LIVEGRAFT_STATE_DIR'] ?? DEFAULT_STATE_DIR,
    )
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr })
    .showHelpAfterError(false);

  const makeAgent = (cmd: Command, log?: Logger, kernelEvents?: KernelEventQueue): Agent => {
    const g = cmd.optsWithGlobals<{ config: string; stateDir: string }>();
    const clock = overrides.clock ?? systemClock;
    return new Agent({
      configPath: g.config,
      stateDir: g.stateDir,
      sysRoot: io.env['LIVEGRAFT_SYSFS'] ?? '/sys',
      procRoot: io.env['LIVEGRAFT_PROC'] ?? '/proc',
      loader: overrides.loader ?? createKmodLoader(),
      clock,
      log: log ?? textLogger(io.stderr),
      fetch: overrides.fetch,
      ...(kernelEvents === undefined ? {} : { kernelEvents }),
      ...stopAfterStep(io.env[STOP_AFTER_STEP_ENV]),
      ...overrides.agent,
    });
  };
  const print = (value: unknown, human: string): void => io.stdout(json ? toJson(value) : human);
  const stateDirOf = (cmd: Command): string => cmd.optsWithGlobals<{ stateDir: string }>().stateDir;

  program
    .command('enroll')
    .description('register this host with a server, pin its TUF root, and write the config file')
    .requiredOption('--server <url>', 'server base URL, e.g. https://livegraft.example.com')
    .option('--key-file <file>', `file holding the registration key (or set ${REGISTRATION_KEY_ENV})`)
    .option('--key <key>', 'registration key on the command line (visible in ps; prefer --key-file)')
    .option(
      '--root-sha256 <hex>',
      'pin the server root with this SHA-256 (`livegraft keys fingerprint` on the admin side)',
    )
    .option('--root <file>', 'pin this TUF root file (obtained out of band)')
    .option('--insecure', 'allow plain http:// with no pinned root (a lab only: the path can swap the root)')
    .option('--hostname <name>', 'name to register (default: this host name)')
    .option('--json', 'machine-readable output')
    .action(
      async (
        opts: {
          server: string;
          key?: string;
          keyFile?: string;
          hostname?: string;
          root?: string;
          rootSha256?: string;
          insecure?: boolean;
          json?: boolean;
        },
        cmd: Command,
      ) => {
        json = opts.json === true;
        const agent = makeAgent(cmd);
        const key = registrationKeyFrom(opts, io.env, (f) => readFileSync(f, 'utf8'));
        const r = await agent.enroll({
          server: opts.server,
          key,
          hostname: opts.hostname,
          rootFile: opts.root,
          rootSha256: opts.rootSha256,
          insecure: opts.insecure,
        });
        if (r.warning !== undefined) io.stderr(`${r.warning}\n`);
        const rootLine =
          r.rootVersion === undefined
            ? 'warning: the server sent no TUF root and none was given (--root FILE); updates will fail closed until one is pinned (pin-root FILE)\n'
            : `pinned TUF root version ${r.rootVersion} from ${r.rootSource ?? '?'}\n`;
        print(
          {
            ok: true,
            hostId: r.config.hostId,
            server: r.config.server,
            config: agent.deps.configPath,
            rootVersion: r.rootVersion ?? null,
          },
          `enrolled as host ${r.config.hostId} with ${r.config.server}; config written to ${agent.deps.configPath}\n${rootLine}`,
        );
        exitCode = 0;
      },
    );

  program
    .command('check')
    .description(
      'ask the server whether a newer patch level exists (exit 0 up to date, 1 none applied, 2 update available, 3 unsupported)',
    )
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const c = await makeAgent(cmd).check();
      print(checkJson(c), formatCheck(c));
      exitCode = c.exit;
    });

  program
    .command('update')
    .description(
      'check, then fetch through signed metadata (TUF), verify and apply the level the server wants (never downgrades on its own)',
    )
    .option('--from <dir>', 'apply the newest level from a bundle directory with the tuf/ layout (no server)')
    .option('--allow-downgrade', 'with --from: allow a level below the applied or highest one')
    .option('--json', 'machine-readable output')
    .action(async (opts: { from?: string; allowDowngrade?: boolean; json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const agent = makeAgent(cmd);
      const u =
        opts.from === undefined
          ? await agent.update({ manual: true })
          : await agent.updateFrom(opts.from, { allowDowngrade: opts.allowDowngrade === true });
      print(opJson(u), formatOp(u));
      exitCode = u.exit;
    });

  program
    .command('status')
    .description('what the kernel runs now and what the agent last heard (offline)')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const s = makeAgent(cmd).status();
      const userspace = userspaceStatusOf(stateDirOf(cmd));
      print(userspace.length > 0 ? { ...s, userspace } : s, formatStatus(s) + formatUserspaceStatus(userspace));
      exitCode = s.exit;
    });

  program
    .command('uname')
    .description('print the effective kernel release, e.g. 6.1.0-56-amd64+lg2')
    .option('--json', 'machine-readable output')
    .action((opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const s = makeAgent(cmd).status();
      print(
        { effectiveRelease: s.effectiveRelease, release: s.kernel.release, level: s.appliedLevel },
        `${s.effectiveRelease}\n`,
      );
      exitCode = 0;
    });

  program
    .command('apply')
    .description('apply a module from a local manifest; the module file it names must sit beside it')
    .argument('<manifest>', 'path to the manifest JSON')
    .option('--allow-downgrade', 'allow a level below the applied one')
    .option('--json', 'machine-readable output')
    .action(async (manifest: string, opts: { allowDowngrade?: boolean; json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const o = await makeAgent(cmd).applyLocal(manifest, { allowDowngrade: opts.allowDowngrade === true });
      print(opJson(o), formatOp(o));
      exitCode = 0;
    });

  program
    .command('rollback')
    .description('replace the applied patch with a cached lower level (default: the highest cached below it)')
    .option('--to <level>', 'target level', positiveInt('--to'))
    .option('--json', 'machine-readable output')
    .action(async (opts: { to?: number; json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const o = await makeAgent(cmd).rollback(opts.to);
      print(opJson(o), formatOp(o));
      exitCode = 0;
    });

  program
    .command('unload')
    .description('disable and remove every livegraft patch; the original kernel code runs again')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const o = await makeAgent(cmd).unload();
      print(opJson(o), formatOp(o));
      exitCode = 0;
    });

  program
    .command('boot')
    .description('re-apply the recorded level for this kernel from the local cache, without the server')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const o = await makeAgent(cmd).boot();
      print(opJson(o), formatOp(o));
      exitCode = 0;
    });

  program
    .command('pin-root')
    .description('trust this TUF root from now on (obtained out of band); drops cached metadata')
    .argument('<file>', 'root metadata JSON (N.root.json)')
    .option('--json', 'machine-readable output')
    .action(async (file: string, opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const o = await makeAgent(cmd).pinRoot(file);
      print(opJson(o), formatOp(o));
      exitCode = 0;
    });

  program
    .command('clear-attention')
    .description('after a stuck transition was dealt with (usually by a reboot), allow patching again')
    .option('--json', 'machine-readable output')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const o = await makeAgent(cmd).clearAttention();
      print(opJson(o), formatOp(o));
      exitCode = 0;
    });

  program
    .command('unquarantine')
    .description('allow a quarantined level (one that was being applied when the host went down) again')
    .argument('<level>', 'patch level', positiveInt('level'))
    .option('--json', 'machine-readable output')
    .action(async (level: number, opts: { json?: boolean }, cmd: Command) => {
      json = opts.json === true;
      const o = await makeAgent(cmd).unquarantine(level);
      print(opJson(o), formatOp(o));
      exitCode = 0;
    });

  program
    .command('run')
    .description('daemon: boot, then check+update now and every interval; SIGUSR1 checks at once; SIGTERM stops')
    .option('--interval <sec>', 'seconds between checks (default: config, then the server)', positiveInt('--interval'))
    .option('--once', 'one cycle, then exit with its status')
    .action(async (opts: { interval?: number; once?: boolean }, cmd: Command) => {
      const agent = makeAgent(cmd, jsonLogger(io.stderr), new KernelEventQueue());
      const stop = new AbortController();
      const daemon = new Daemon(agent, {
        intervalSec: opts.interval,
        once: opts.once === true,
        stop: stop.signal,
        kmsgPath: io.env['LIVEGRAFT_KMSG'] ?? DEFAULT_KMSG_PATH,
      });
      const unregister = (overrides.onSignals ?? processSignals)({
        wake: () => daemon.trigger(),
        stop: () => stop.abort(),
      });
      const userspaceStop = new AbortController();
      const userspace =
        opts.once === true
          ? Promise.resolve()
          : userspaceWatch(stateDirOf(cmd), io, userspaceStop.signal, () => daemon.trigger());
      try {
        exitCode = await daemon.run();
      } finally {
        userspaceStop.abort();
        await userspace;
        unregister();
      }
    });

  registerUserspaceCommands(program, {
    stateDir: stateDirOf,
    env: io.env,
    stdout: io.stdout,
    stderr: io.stderr,
    setExit: (code) => {
      exitCode = code;
    },
    setJson: (j) => {
      json = j;
    },
  });

  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        return 0;
      }
      return StatusExit.USAGE;
    }
    io.stderr(errorLine(err));
    if (json) io.stdout(errorJson(err));
    if (err instanceof LivegraftError && err.code === 'BUSY') return StatusExit.BUSY;
    return StatusExit.ERROR;
  }
}
