import type { ManSection } from '../cli-docs.ts';

/** The parts of livegraft-agent(8) that are not in the command definitions. */
export function agentManSections(): ManSection[] {
  const item = (tag: string, text: string): string[] => ['.TP', `.B ${tag}`, text];
  return [
    {
      title: 'EXIT STATUS',
      body: [
        ...item('0', 'done, or nothing to do; for \\fBcheck\\fR and \\fBstatus\\fR: up to date'),
        ...item('1', '\\fBcheck\\fR/\\fBstatus\\fR: no patch applied and none available'),
        ...item('2', '\\fBcheck\\fR/\\fBstatus\\fR: an update is available'),
        ...item('3', 'the running kernel is not supported'),
        ...item(
          '4',
          'error: the message on standard error starts with a stable code, e.g. \\fBerror [KERNEL_MISMATCH]\\fR',
        ),
        ...item('5', 'another agent holds the lock (BUSY)'),
        ...item('64', 'bad command line'),
      ],
    },
    {
      title: 'ENVIRONMENT',
      body: [
        ...item('LIVEGRAFT_CONFIG', 'config file (default /etc/livegraft/agent.json)'),
        ...item('LIVEGRAFT_STATE_DIR', 'state and module cache (default /var/lib/livegraft)'),
        ...item('LIVEGRAFT_RUN_ARGS', 'extra arguments for \\fBrun\\fR in the systemd unit'),
      ],
    },
    {
      title: 'FILES',
      body: [
        ...item('/etc/livegraft/agent.json', 'server, host id and token, written by \\fBenroll\\fR (mode 0600)'),
        ...item('/etc/livegraft/agent.conf', 'settings for the systemd units, with the optional agent.json fields'),
        ...item('/etc/livegraft/disable', 'kill switch: while it exists, boot, update and run do nothing'),
        ...item('/var/lib/livegraft', 'state, journal, module cache, trusted TUF metadata, scanner files'),
        ...item(
          'livegraft\\-agent\\-boot.service',
          're\\-applies the cached level at boot, before the network (oneshot)',
        ),
        ...item('livegraft\\-agent.service', 'the daemon (\\fBrun\\fR); starts once the host is enrolled'),
      ],
    },
    {
      title: 'SEE ALSO',
      body: ['.BR livegraft (1),', '.BR systemctl (1)'],
    },
  ];
}
