#!/usr/bin/env node
import { Command } from 'commander';
import { parseArgs, runMain, stopSignal } from '../cli-main.ts';
import { spawnRunner } from '../runner.ts';
import { JobClient } from './client.ts';
import { workerConfig, type WorkerFlags } from './config.ts';
import { runWorker } from './worker.ts';

async function main(argv: string[]): Promise<number> {
  const program = new Command()
    .name('livegraft-worker')
    .description(
      'Claim build jobs from a Livegraft server: build each level for its exact kernel build, validate it in a VM of that kernel, and send the result.',
    )
    .option('--server <url>', 'the Livegraft server, e.g. https://patches.example.org')
    .option('--token-file <file>', 'file holding a worker token (livegraft tokens create --role worker)')
    .option('--id <name>', 'this worker in job records (default: hostname:pid)')
    .option('--cache-dir <dir>', 'kernel builds cache (default $LIVEGRAFT_CACHE_DIR, else ~/.cache/livegraft)')
    .option('--work-dir <dir>', 'scratch space for jobs (default <cache-dir>/worker)')
    .option('--poll <sec>', 'seconds between claims while there is no work (default 10)')
    .option('--once', 'run at most one job, then exit')
    .option('--until-idle', 'exit when the queue is empty')
    .option('--agent <file>', "the agent bundle the validation VM runs (default: this checkout's build)")
    .option('--node <file>', 'the runtime the agent runs on in the VM (default: this one)')
    .option('--validation-timeout <sec>', 'bound on one validation, boot to power-off (default 1200)');
  const early = parseArgs(program, argv);
  if (early !== undefined) return early;
  const c = workerConfig(program.opts<WorkerFlags>());
  const stop = stopSignal();
  const log = (line: string): void => {
    process.stderr.write(`${new Date().toISOString()} ${line}\n`);
  };
  log(`worker ${c.workerId} serving ${c.server.href}`);
  const summary = await runWorker({
    client: new JobClient({ url: c.server, token: c.token, workerId: c.workerId }),
    run: spawnRunner,
    cacheDir: c.cacheDir,
    workDir: c.workDir,
    node: c.node,
    agentBundle: c.agentBundle,
    ...(c.validationTimeoutMs !== undefined ? { validationTimeoutMs: c.validationTimeoutMs } : {}),
    log,
    pollMs: c.pollMs,
    ...(c.maxJobs !== undefined ? { maxJobs: c.maxJobs } : {}),
    untilIdle: c.untilIdle,
    signal: stop.signal,
  });
  log(`worker stopping after ${summary.jobs} job(s) ${JSON.stringify(summary.outcomes)}`);
  return 0;
}

runMain(main);
