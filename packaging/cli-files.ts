/**
 * Man pages and shell completion for both command-line programs, as files:
 * `livegraft-agent` ships them in its Debian package; `livegraft` (the admin
 * CLI, run from a checkout) gets them in out/cli/ to copy into place.
 */
import { bashCompletion, manPage, zshCompletion } from './cli-docs.ts';
import { agentManSections } from './agent/man.ts';
import { adminProgram, agentProgram } from './programs.ts';

export interface CliFile {
  /** Relative to the output directory, laid out like /usr/share. */
  path: string;
  content: string;
}

const ADMIN_SECTIONS = [
  {
    title: 'ENVIRONMENT',
    body: [
      '.TP',
      '.B LIVEGRAFT_SERVER',
      'patch server URL for the admin commands (default http://127.0.0.1:8720)',
      '.TP',
      '.B LIVEGRAFT_TOKEN',
      'API token for the admin commands (or \\fB\\-\\-token\\fR, \\fB\\-\\-token\\-file\\fR)',
    ],
  },
  {
    title: 'EXIT STATUS',
    body: ['0 on success; 1 on an error, printed as \\fBerror [CODE]: message\\fR on standard error.'],
  },
  { title: 'SEE ALSO', body: ['.BR livegraft\\-agent (8)'] },
];

export async function cliFiles(version: string): Promise<CliFile[]> {
  const agent = await agentProgram();
  const admin = await adminProgram();
  return [
    {
      path: 'man/man8/livegraft-agent.8',
      content: manPage(agent, {
        section: 8,
        version,
        summary: 'Livegraft host agent: applies live kernel patches',
        extra: agentManSections(),
      }),
    },
    {
      path: 'man/man1/livegraft.1',
      content: manPage(admin, {
        section: 1,
        version,
        summary: 'Livegraft admin command line: build, publish and roll out live kernel patches',
        extra: ADMIN_SECTIONS,
      }),
    },
    { path: 'bash-completion/completions/livegraft-agent', content: bashCompletion(agent) },
    { path: 'bash-completion/completions/livegraft', content: bashCompletion(admin) },
    { path: 'zsh/vendor-completions/_livegraft-agent', content: zshCompletion(agent) },
    { path: 'zsh/vendor-completions/_livegraft', content: zshCompletion(admin) },
  ];
}
