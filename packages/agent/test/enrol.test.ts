// Enrolment hands a host to whoever answers it. Over plain HTTP the agent refuses
// unless the root is pinned (or --insecure is given, loudly), and a pinned root
// that the server does not show stops enrolment before the registration key is sent.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { REGISTRATION_KEY_ENV, registrableHostname, registrationKeyFrom } from '../src/delivery/enrol.ts';
import { TestHost } from './helpers/cli.ts';
import { FakeServer, REGISTRATION_KEY } from './helpers/fake-server.ts';

describe('pinned enrolment', () => {
  let server: FakeServer;
  let host: TestHost;
  let keyFile: string;
  const rootSha = (): string => createHash('sha256').update(server.repo.rootBytes(1)).digest('hex');

  before(async () => {
    server = await new FakeServer().start();
  });
  after(async () => server.stop());
  beforeEach(() => {
    host?.cleanup();
    host = new TestHost();
    mkdirSync(host.root, { recursive: true });
    keyFile = join(host.root, 'registration-key');
    writeFileSync(keyFile, `${REGISTRATION_KEY}\n`, { mode: 0o600 });
    server.enrolls.length = 0;
    server.enrollRoot = undefined;
  });

  it('refuses plain HTTP without a pin or --insecure, before sending anything', async () => {
    const r = await host.cli(['enroll', '--server', server.url, '--key-file', keyFile]);
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^error \[ENROL_INSECURE\]: refusing to enrol over plain HTTP/);
    assert.match(r.stderr, /--root-sha256/);
    assert.deepEqual(server.enrolls, []);
    assert.equal(existsSync(host.configPath), false);
  });

  it('--insecure enrols over plain HTTP with a loud warning', async () => {
    const r = await host.cli(['enroll', '--insecure', '--server', server.url, '--key-file', keyFile]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /WARNING: --insecure: .*choose the TUF root this host trusts/);
    assert.equal(server.enrolls.length, 1);
  });

  it('--root-sha256 pins the server root that has that hash, whatever the enrol answer carries', async () => {
    server.enrollRoot = { signed: 'a root from someone on the path' };
    const r = await host.cli(['enroll', '--server', server.url, '--key-file', keyFile, '--root-sha256', rootSha()]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /pinned TUF root version 1 from .*1\.root\.json \(sha256 [0-9a-f]{16}… as pinned\)/);
    assert.equal(server.enrolls[0]?.registrationKey, REGISTRATION_KEY);
    const update = await host.cli(['check']);
    assert.notEqual(update.code, 4, update.stderr);
  });

  it('a root that does not match the pin stops enrolment before the key is sent', async () => {
    const wrong = createHash('sha256').update('another root').digest('hex');
    const r = await host.cli(['enroll', '--server', server.url, '--key-file', keyFile, '--root-sha256', wrong]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[TUF_ROOT_MISMATCH\]: no TUF root served by .* has SHA-256 /);
    assert.deepEqual(server.enrolls, [], 'the registration key never left the host');
    assert.equal(existsSync(host.configPath), false);
  });

  it('--root FILE must be the root the server serves as that version', async () => {
    const file = join(host.root, '1.root.json');
    const other = JSON.parse(server.repo.rootBytes(1).toString('utf8')) as { signed: { expires: string } };
    other.signed.expires = '2099-01-01T00:00:00Z';
    writeFileSync(file, JSON.stringify(other));
    const r = await host.cli(['enroll', '--server', server.url, '--key-file', keyFile, '--root', file]);
    assert.equal(r.code, 4);
    assert.match(r.stderr, /^error \[TUF_ROOT_MISMATCH\]: .* does not serve .*1\.root\.json as its root version 1/);
    assert.deepEqual(server.enrolls, []);
    writeFileSync(file, server.repo.rootBytes(1));
    const ok = await host.cli(['enroll', '--server', server.url, '--key-file', keyFile, '--root', file]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stderr, /WARNING: enrolling over plain HTTP: the root is pinned/);
  });

  it('a malformed --root-sha256 or a missing key is a clear error', async () => {
    const bad = await host.cli(['enroll', '--server', server.url, '--key-file', keyFile, '--root-sha256', 'abc']);
    assert.equal(bad.code, 4);
    assert.match(bad.stderr, /--root-sha256 needs the 64 hex digits/);
    const none = await host.cli(['enroll', '--server', server.url, '--root-sha256', rootSha()]);
    assert.notEqual(none.code, 0);
    assert.match(none.stderr, /no registration key: pass --key-file FILE, set LIVEGRAFT_REGISTRATION_KEY/);
    assert.deepEqual(server.enrolls, []);
  });

  it('registers this host’s name reduced to what the server accepts', () => {
    assert.equal(registrableHostname('web-1.example'), 'web-1.example');
    assert.equal(registrableHostname('(none)'), 'none-');
    assert.equal(registrableHostname('evil\x1b]0;x\x07'), 'evil-0-x-');
    assert.equal(registrableHostname('   '), 'host');
  });

  it('takes the key from exactly one of --key, --key-file or the environment', () => {
    const read = (): string => `${REGISTRATION_KEY}\n`;
    assert.equal(registrationKeyFrom({ keyFile: 'k' }, {}, read), REGISTRATION_KEY);
    assert.equal(registrationKeyFrom({}, { [REGISTRATION_KEY_ENV]: 'from-env-key' }, read), 'from-env-key');
    assert.equal(registrationKeyFrom({ key: 'on-the-line' }, {}, read), 'on-the-line');
    assert.throws(() => registrationKeyFrom({ key: 'a', keyFile: 'k' }, {}, read), /give the registration key once/);
  });
});
