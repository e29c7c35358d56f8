import { Command, InvalidArgumentError } from 'commander';
import { LivegraftError } from '@livegraft/protocol';
import { serveMirror, syncMirror, type SyncResult } from './mirror.ts';

export const DEFAULT_MIRROR_PORT = 8730;
/** A mirror polling more often than this only loads the upstream. */
const MIN_INTERVAL_SEC = 10;
const MAX_INTERVAL_SEC = 24 * 3600;

function integer(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

function summary(r: SyncResult): string {
  return `synced root ${r.rootVersion}, timestamp ${r.timestampVersion} (expires ${r.timestampExpires}), snapshot ${r.snapshotVersion}, targets ${r.targetsVersion}: ${r.targets} module(s), ${r.downloaded} new`;
}

/** `livegraft mirror`: copy a server's TUF repository into a directory and/or serve a directory. */
export function mirrorCommand(): Command {
  return new Command('mirror')
    .description(
      'mirror the signed TUF repository of a patch server (or serve an export bundle); agents verify everything it serves',
    )
    .option('--upstream <url>', 'patch server (or another mirror) to copy from')
    .requiredOption('--dir <dir>', 'mirror directory (tuf/metadata, tuf/targets)')
    .option('--serve', 'serve the directory over HTTP')
    .option('--host <host>', 'address to serve on', '127.0.0.1')
    .option('--port <port>', 'port to serve on (0 picks one)', integer, DEFAULT_MIRROR_PORT)
    .option(
      '--interval <sec>',
      `re-sync every <sec> seconds (${MIN_INTERVAL_SEC}..${MAX_INTERVAL_SEC}); needs --upstream`,
      integer,
    )
    .action(
      async (o: { upstream?: string; dir: string; serve?: boolean; host: string; port: number; interval?: number }) => {
        if (o.upstream === undefined && o.serve !== true) {
          throw new LivegraftError('USAGE', 'give --upstream URL to sync, --serve to serve, or both');
        }
        if (o.interval !== undefined) {
          if (o.upstream === undefined) throw new LivegraftError('USAGE', '--interval needs --upstream');
          if (o.interval < MIN_INTERVAL_SEC || o.interval > MAX_INTERVAL_SEC) {
            throw new LivegraftError('USAGE', `--interval must be ${MIN_INTERVAL_SEC}..${MAX_INTERVAL_SEC} seconds`);
          }
        }
        const upstream = o.upstream;
        if (upstream !== undefined) console.log(summary(await syncMirror({ upstream, dir: o.dir })));
        if (o.serve !== true) return;
        const server = serveMirror(o.dir);
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(o.port, o.host, () => resolve());
        });
        const addr = server.address();
        const port = typeof addr === 'object' && addr !== null ? addr.port : o.port;
        console.log(`serving ${o.dir} at http://${o.host.includes(':') ? `[${o.host}]` : o.host}:${port}/tuf/`);
        let timer: NodeJS.Timeout | undefined;
        if (upstream !== undefined && o.interval !== undefined) {
          let running = false;
          timer = setInterval(() => {
            if (running) return;
            running = true;
            syncMirror({ upstream, dir: o.dir })
              .then((r) => console.log(summary(r)))
              .catch((err: unknown) =>
                console.error(`sync failed (still serving the last good copy): ${(err as Error).message}`),
              )
              .finally(() => (running = false));
          }, o.interval * 1000);
        }
        await new Promise<void>((resolve) => {
          const stop = (): void => {
            if (timer !== undefined) clearInterval(timer);
            server.close(() => resolve());
            server.closeAllConnections();
          };
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        });
      },
    );
}
