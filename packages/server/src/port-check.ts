import { createServer } from 'node:net';
import { LivegraftError } from '@livegraft/protocol';

/**
 * Refuses a port another process listens on, before the server creates its
 * data directory, secrets and keys: a failed start leaves nothing behind.
 * (The listen itself still reports the rare port taken in between.)
 */
export async function checkPortFree(host: string, port: number): Promise<void> {
  if (port === 0) return;
  const probe = createServer();
  try {
    await new Promise<void>((resolve, reject) => {
      probe.once('error', reject);
      probe.listen({ host, port, exclusive: true }, resolve);
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      throw new LivegraftError(
        'PORT_IN_USE',
        `port ${port} on ${host} is already in use (another livegraft-server?): stop that process or choose another with --port`,
      );
    }
    if (code === 'EACCES') {
      throw new LivegraftError(
        'PORT_DENIED',
        `port ${port} on ${host} needs privileges this process lacks: choose a port above 1023 with --port`,
      );
    }
    if (code === 'EADDRNOTAVAIL') {
      throw new LivegraftError('HOST_UNAVAILABLE', `--host ${host} is not an address of this machine`);
    }
    throw err;
  }
  await new Promise<void>((resolve) => probe.close(() => resolve()));
}
