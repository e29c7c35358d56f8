import { join } from 'node:path';
import { LivegraftError } from '@livegraft/protocol';
import { writeFileAtomic } from './keys.ts';
import { syncMirror, type SyncResult } from './mirror.ts';

export interface ExportOptions {
  server: string;
  token?: string;
  out: string;
  kernels?: readonly string[];
  fetch?: typeof fetch;
  now?: () => Date;
}

function readme(o: ExportOptions, r: SyncResult, at: Date): string {
  return `Livegraft air-gapped patch bundle
=================================

Exported from ${o.server} at ${at.toISOString()}.
Kernels: ${o.kernels === undefined ? 'all' : o.kernels.join(', ')} (${r.targets} patch module(s)).
TUF versions: root ${r.rootVersion}, timestamp ${r.timestampVersion}, snapshot ${r.snapshotVersion}, targets ${r.targetsVersion}.

IMPORTANT: the signed timestamp in this bundle expires at ${r.timestampExpires}.
Agents refuse expired metadata (that is what stops freeze attacks), so import
the bundle before then, or export again.

Layout (identical to the patch server and to any mirror):
  tuf/metadata/N.root.json, timestamp.json, N.snapshot.json, N.targets.json
  tuf/targets/<kernelId>/<level>/<sha256>.<name>.ko

To import, serve this directory inside the air-gapped network:
  livegraft mirror --dir <this directory> --serve --host 0.0.0.0 --port 8730
and point the agents' TUF repository URL at http://<that host>:8730.

Nothing here needs to be trusted: agents verify every file against the root
they pinned at enrolment (or were given with --root). A bundle that was
altered in transit is refused, not applied.
`;
}

/** `livegraft export`: a directory with the signed metadata and the modules a site needs, plus a README. */
export async function exportBundle(o: ExportOptions): Promise<SyncResult> {
  if (o.kernels !== undefined && o.kernels.some((k) => !/^[0-9a-f]{64}$/.test(k))) {
    throw new LivegraftError('USAGE', '--kernel takes a kernel id (64 hex digits, see livegraft patches --json)');
  }
  const headers: Record<string, string> = o.token === undefined ? {} : { authorization: `Bearer ${o.token}` };
  const now = o.now ?? (() => new Date());
  const result = await syncMirror({
    upstream: o.server,
    dir: o.out,
    headers,
    now,
    ...(o.kernels === undefined ? {} : { kernels: o.kernels }),
    ...(o.fetch === undefined ? {} : { fetch: o.fetch }),
  });
  await writeFileAtomic(join(o.out, 'README.txt'), readme(o, result, now()), 0o644, true);
  return result;
}
