import { InvalidArgumentError, Option, type Command } from 'commander';
import { API_PREFIX, LivegraftError, type HostRecord, type PatchRecord } from '@livegraft/protocol';
import { ApiClient } from './api.ts';
import { tokenFrom } from './connection.ts';

export interface FleetOpts {
  server: string;
  token?: string;
  tokenFile?: string;
  json?: boolean;
}

/**
 * Adds the usual connection options and --json to a fleet command. Options
 * are positional, so a group (`feeds`) and its subcommands (`feeds create`)
 * each keep their own --server and --token.
 */
export function connected(cmd: Command, defaultServer: string): Command {
  return cmd
    .enablePositionalOptions()
    .addOption(new Option('--server <url>', 'patch server URL').env('LIVEGRAFT_SERVER').default(defaultServer))
    .option('--token <token>', 'API token (or LIVEGRAFT_TOKEN); viewer reads, operator changes rollouts, admin all')
    .option('--token-file <path>', 'file holding the API token')
    .option('--json', 'print JSON');
}

export class FleetApi {
  readonly #api: ApiClient;

  constructor(o: FleetOpts) {
    this.#api = new ApiClient({ server: o.server, token: tokenFrom(o) });
  }

  get<T>(path: string): Promise<T> {
    return this.#api.request<T>('GET', `${API_PREFIX}${path}`);
  }

  send<T>(method: string, path: string, json?: unknown): Promise<T> {
    return this.#api.request<T>(method, `${API_PREFIX}${path}`, json === undefined ? undefined : { json });
  }

  /** A full kernel id from a unique prefix (8+ hex digits) of one the server has patches for. */
  async kernelId(given: string): Promise<string> {
    if (/^[0-9a-f]{64}$/.test(given)) return given;
    if (!/^[0-9a-f]{8,63}$/.test(given)) {
      throw new LivegraftError('BAD_KERNEL_ID', `"${given}" is not a kernel id (64 hex digits, or a prefix of 8+)`);
    }
    const ids = [...new Set((await this.get<PatchRecord[]>('/patches')).map((p) => p.kernelId))];
    const found = ids.filter((id) => id.startsWith(given));
    if (found.length !== 1) {
      throw new LivegraftError(
        'BAD_KERNEL_ID',
        found.length === 0 ? `no kernel with patches starts with ${given}` : `${given} matches ${found.length} kernels`,
      );
    }
    return found[0] as string;
  }

  /** A host id from an id, a unique hostname, or a unique id prefix of 8+ characters (as `hosts` prints them). */
  async hostId(given: string): Promise<string> {
    const hosts = await this.get<HostRecord[]>('/hosts');
    if (hosts.some((h) => h.id === given)) return given;
    const live = hosts.filter((h) => (h.revokedAt ?? null) === null);
    const named = live.filter((h) => h.hostname === given);
    if (named.length === 1) return (named[0] as HostRecord).id;
    if (named.length > 1)
      throw new LivegraftError('HOST_NOT_FOUND', `${named.length} hosts are named ${given}; use the id`);
    const prefixed = given.length >= 8 ? live.filter((h) => h.id.startsWith(given)) : [];
    if (prefixed.length === 1) return (prefixed[0] as HostRecord).id;
    throw new LivegraftError(
      'HOST_NOT_FOUND',
      prefixed.length > 1
        ? `${prefixed.length} host ids start with ${given}; give more of the id`
        : `no host with id, hostname or id prefix (8+ characters) ${given}`,
    );
  }
}

export function wholeNumber(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

export function percent(value: string): number {
  const n = Number(value);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(value) || n > 100) throw new InvalidArgumentError('must be a number from 0 to 100');
  return n;
}

/** Durations like 90, 90s, 15m, 2h, 1d, in seconds. */
export function duration(value: string): number {
  const m = /^([0-9]+)([smhd]?)$/.exec(value);
  if (m === null) throw new InvalidArgumentError('must be a duration like 30m, 2h, 1d or seconds');
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Prints `value` as JSON with --json, else runs the human form. */
export function out(o: FleetOpts, value: unknown, text: () => void): void {
  if (o.json === true) console.log(JSON.stringify(value, null, 2));
  else text();
}
