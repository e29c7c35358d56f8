import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli, type CliOverrides } from '../../src/cli/program.ts';
import { FakeKernel } from './fake-kernel.ts';

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fake host: kernel tree, state dir and config path in one temp dir. */
export class TestHost {
  readonly root: string;
  kernel: FakeKernel;
  readonly stateDir: string;
  readonly configPath: string;

  constructor(opts: { procVersion?: string } = {}) {
    this.root = mkdtempSync(join(tmpdir(), 'livegraft-agent-test-'));
    this.kernel = new FakeKernel(join(this.root, 'k0'), opts);
    this.stateDir = join(this.root, 'state');
    this.configPath = join(this.root, 'etc/agent.json');
  }

  /** A reboot: a fresh kernel tree (nothing loaded), same disk. */
  reboot(opts: { procVersion?: string } = {}): FakeKernel {
    this.kernel = new FakeKernel(join(this.root, `k${Date.now()}${Math.random()}`), opts);
    return this.kernel;
  }

  async cli(args: string[], overrides: CliOverrides = {}): Promise<CliRun> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(
      args,
      {
        stdout: (s) => (stdout += s),
        stderr: (s) => (stderr += s),
        env: { ...this.kernel.env, LIVEGRAFT_CONFIG: this.configPath, LIVEGRAFT_STATE_DIR: this.stateDir },
      },
      { loader: this.kernel.loader, clock: this.kernel.clock, ...overrides },
    );
    return { code, stdout, stderr };
  }

  cleanup(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
