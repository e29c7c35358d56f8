// The agent as packaged: a CommonJS bundle (no top-level await), so that Node.js
// runs it as /usr/bin/livegraft-agent without a .mjs name, down to Debian 12's 18.
import { runCli } from '../../packages/agent/src/cli/program.ts';

void runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
}).then((code) => process.exit(code));
