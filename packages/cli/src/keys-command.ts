import { Command, InvalidArgumentError, Option } from 'commander';
import { LivegraftError, TUF_ROLES, type TufRole } from '@livegraft/protocol';
import { fileRootFingerprint, serverRootFingerprint } from './keys-fingerprint.ts';
import { DEFAULT_ROOT_EXPIRY_DAYS, describeStatus, keysInit, keysRotate, keysSignRoot } from './keys.ts';

function count(value: string): number {
  if (!/^[0-9]+$/.test(value)) throw new InvalidArgumentError('must be a whole number');
  return Number(value);
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function role(value: string): TufRole {
  if (!(TUF_ROLES as readonly string[]).includes(value)) {
    throw new InvalidArgumentError(`must be one of ${TUF_ROLES.join(', ')}`);
  }
  return value as TufRole;
}

/** `livegraft keys ...`: run on an admin workstation, ideally offline for the root keys. */
export function keysCommand(): Command {
  const keys = new Command('keys').description('TUF signing keys and root metadata for signed delivery');

  keys
    .command('init')
    .description('create root, targets, snapshot and timestamp keys (mode 0600) and a signed 1.root.json')
    .requiredOption('--out <dir>', 'directory to write the key files and 1.root.json into (must not hold them yet)')
    .option('--root-keys <n>', 'number of root keys (root-1.json ... when more than one)', count, 1)
    .option('--threshold <n>', 'root signatures needed to accept a new root', count, 1)
    .option('--expires-days <days>', 'root validity', count, DEFAULT_ROOT_EXPIRY_DAYS)
    .action(async (o: { out: string; rootKeys: number; threshold: number; expiresDays: number }) => {
      const r = await keysInit({ ...o, now: new Date() });
      console.log(`wrote ${r.rootPath}`);
      for (const p of Object.values(r.keyPaths)) console.log(`wrote ${p} (private key, mode 0600)`);
      console.log(
        '\nNext:\n' +
          '  1. copy targets.json, snapshot.json, timestamp.json to the server: <data-dir>/keys/ (mode 0600)\n' +
          '  2. copy 1.root.json to the server: <data-dir>/tuf/roots/ (or pass --tuf-root FILE)\n' +
          '  3. move the root key file(s) OFFLINE (e.g. to an encrypted USB stick); the server never needs them\n' +
          '  4. (re)start livegraft-server; agents pin the root when they enrol, or take it with --root FILE',
      );
    });

  keys
    .command('rotate')
    .description('new key for a role and root version N+1 naming it, signed with the given root keys')
    .requiredOption('--role <role>', 'root | targets | snapshot | timestamp', role)
    .requiredOption('--root <file>', 'the current root (N.root.json)')
    .option(
      '--key <file>',
      'a root key file to sign the new root with (repeatable); a new root key signs by itself',
      collect,
      [],
    )
    .option('--out <dir>', 'where to write <role>-<N+1>.json and <N+1>.root.json', '.')
    .option('--replace <keyid>', 'replace only this key of the role (default: all of its keys)')
    .option('--threshold <n>', 'new threshold for the role', count)
    .option('--expires-days <days>', 'validity of the new root', count, DEFAULT_ROOT_EXPIRY_DAYS)
    .action(
      async (o: {
        role: TufRole;
        root: string;
        key: string[];
        out: string;
        replace?: string;
        threshold?: number;
        expiresDays: number;
      }) => {
        const r = await keysRotate({
          role: o.role,
          root: o.root,
          signingKeys: o.key,
          out: o.out,
          expiresDays: o.expiresDays,
          now: new Date(),
          ...(o.replace === undefined ? {} : { replace: o.replace }),
          ...(o.threshold === undefined ? {} : { threshold: o.threshold }),
        });
        console.log(`wrote ${r.keyPath} (private key, mode 0600)`);
        console.log(`wrote ${r.rootPath}: signatures from ${describeStatus(r.status)}`);
        if (r.status.every((s) => s.ok)) {
          console.log(
            o.role === 'root'
              ? 'Put it in <data-dir>/tuf/roots/ and restart the server; keep the new root key offline.'
              : `Install ${r.keyPath} as <data-dir>/keys/${o.role}.json and ${r.rootPath} in <data-dir>/tuf/roots/, then restart the server.`,
          );
        } else {
          console.log(
            'Clients will refuse this root until it has enough signatures: add them with "livegraft keys sign-root".',
          );
        }
      },
    );

  keys
    .command('sign-root')
    .description('add signatures to a root file in place and show whether clients will accept it')
    .requiredOption('--root <file>', 'the root to sign (N.root.json)')
    .option('--key <file>', 'a root key file (repeatable); none only shows the status', collect, [])
    .option('--previous <file>', 'root N-1, to check the rotation rule (a threshold of its root keys too)')
    .action(async (o: { root: string; key: string[]; previous?: string }) => {
      const status = await keysSignRoot({
        root: o.root,
        keys: o.key,
        ...(o.previous === undefined ? {} : { previous: o.previous }),
      });
      console.log(`${o.root}: signatures from ${describeStatus(status)}`);
      if (!status.every((s) => s.ok)) {
        throw new LivegraftError('TUF_THRESHOLD_UNMET', 'not enough signatures yet for clients to accept this root');
      }
    });

  keys
    .command('fingerprint')
    .description("SHA-256 of the server's current TUF root (or of a root file): what hosts pin at enrolment")
    .addOption(
      new Option('--server <url>', 'patch server URL').env('LIVEGRAFT_SERVER').default('http://127.0.0.1:8720'),
    )
    .option('--root <file>', 'a root file (N.root.json) instead of the server')
    .option('--json', 'print JSON')
    .action(async (o: { server: string; root?: string; json?: boolean }) => {
      const f = o.root === undefined ? await serverRootFingerprint(o.server) : fileRootFingerprint(o.root);
      if (o.json) return console.log(JSON.stringify(f));
      console.log(f.sha256);
      console.error(`TUF root version ${f.version} (${f.source})`);
    });

  return keys;
}
