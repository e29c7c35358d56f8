import assert from 'node:assert/strict';
import { TestHost } from './cli.ts';
import { FakeServer, REGISTRATION_KEY } from './fake-server.ts';

/** A fake server and a fresh test host enrolled with it: the setup most agent suites share. */
export async function enrolledHost(): Promise<{ server: FakeServer; host: TestHost }> {
  const server = await new FakeServer().start();
  const host = new TestHost();
  const r = await host.cli(['enroll', '--insecure', '--server', server.url, '--key', REGISTRATION_KEY]);
  assert.equal(r.code, 0, r.stderr);
  return { server, host };
}

/** Stops the server and removes the host's temporary tree. */
export async function releaseHost(server: FakeServer, host: TestHost): Promise<void> {
  await server.stop();
  host.cleanup();
}
