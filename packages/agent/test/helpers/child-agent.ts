/**
 * The agent as a separate process over a fake kernel tree, for crash tests:
 * the parent SIGKILLs it. LG_FAKE_KERNEL is the tree's root; with
 * LG_HANG_AT=<journal step> it prints "HANG <step>" once that step is on disk
 * and then waits forever, so the kill lands exactly there.
 */
import { runCli } from '../../src/cli/program.ts';
import { FakeKernel } from './fake-kernel.ts';

const root = process.env['LG_FAKE_KERNEL'];
if (root === undefined) throw new Error('LG_FAKE_KERNEL is not set');
const hangAt = process.env['LG_HANG_AT'];
const kernel = new FakeKernel(root, { attach: true });
const code = await runCli(
  process.argv.slice(2),
  { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), env: process.env },
  {
    loader: kernel.loader,
    clock: kernel.clock,
    agent: {
      journalHook: async (step) => {
        if (step !== hangAt) return;
        process.stdout.write(`HANG ${step}\n`);
        // Keep the event loop alive: only SIGKILL ends this process.
        setInterval(() => undefined, 60_000);
        await new Promise(() => undefined);
      },
    },
  },
);
process.exit(code);
