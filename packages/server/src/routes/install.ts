import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { LivegraftError } from '@livegraft/protocol';
import type { App } from '../context.ts';
import { installScript } from '../install-script.ts';
import type { TufRepository } from '../tuf/repository.ts';

export interface InstallRouteContext {
  tuf: TufRepository;
  /** The livegraft-agent .deb served to hosts; unset, /install.sh answers 404. */
  agentPackage: string | undefined;
}

/** The current root's version and the SHA-256 of its file as served at /tuf/metadata/N.root.json. */
export async function rootFingerprint(tuf: TufRepository): Promise<{ version: number; sha256: string }> {
  const root = (await tuf.rootJson()) as { signed?: { version?: unknown } };
  const version = root.signed?.version;
  if (typeof version !== 'number') throw new LivegraftError('TUF_ROOT_MISSING', 'the stored TUF root has no version');
  const text = await tuf.metadataFile(`${version}.root.json`);
  if (text === undefined) throw new LivegraftError('TUF_ROOT_MISSING', `root ${version} is not served`);
  return { version, sha256: createHash('sha256').update(text).digest('hex') };
}

/** Host names a URL rendered into the script may carry: a DNS name or an address, with a port. */
const HOST_HEADER = /^[A-Za-z0-9.-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$/;

/**
 * GET /install.sh and the agent package it installs. Public, like /tuf: the
 * script refuses to enrol unless the root matches a fingerprint the admin
 * handed out, and enrolment itself needs the registration key.
 */
export function installRoutes(app: App, ctx: InstallRouteContext): void {
  const packageFile = async (): Promise<{ path: string; size: number }> => {
    if (ctx.agentPackage === undefined) {
      throw new LivegraftError('NOT_FOUND', 'this server has no agent package to install (--agent-package)');
    }
    const s = await stat(ctx.agentPackage).catch(() => undefined);
    if (s === undefined || !s.isFile()) {
      throw new LivegraftError('NOT_FOUND', `the agent package ${ctx.agentPackage} is missing`);
    }
    return { path: ctx.agentPackage, size: s.size };
  };

  app.get('/install.sh', async (req, reply) => {
    await packageFile();
    const host = req.host;
    if (!HOST_HEADER.test(host)) throw new LivegraftError('BAD_REQUEST', 'the Host header is not a host name');
    const { version } = await rootFingerprint(ctx.tuf);
    return reply
      .header('content-type', 'text/x-shellscript; charset=utf-8')
      .header('cache-control', 'no-cache')
      .send(installScript({ server: `${req.protocol}://${host}`, rootVersion: version }));
  });

  app.get('/install/livegraft-agent.deb', async (_req, reply) => {
    const f = await packageFile();
    return reply
      .header('content-type', 'application/vnd.debian.binary-package')
      .header('content-length', f.size)
      .header('cache-control', 'no-cache')
      .send(createReadStream(f.path));
  });
}
