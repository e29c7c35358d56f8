import { runCli } from './cli/program.ts';

// The only place the agent exits the process.
const code = await runCli(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  env: process.env,
});
process.exit(code);
