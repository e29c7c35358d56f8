import type { Command } from 'commander';
import { tokensCommand, registrationKeysCommand, auditCommand } from './fleet-access.ts';
import { feedsCommand } from './fleet-feeds.ts';
import { haltCommands, pinCommands, promoteCommand, rollbackCommand } from './fleet-rollout.ts';

export { hostsCommand } from './fleet-hosts.ts';

/** Every fleet command, for bin.ts to add. */
export function fleetCommands(server: string): Command[] {
  return [
    feedsCommand(server),
    promoteCommand(server),
    ...pinCommands(server),
    rollbackCommand(server),
    ...haltCommands(server),
    tokensCommand(server),
    registrationKeysCommand(server),
    auditCommand(server),
  ];
}
