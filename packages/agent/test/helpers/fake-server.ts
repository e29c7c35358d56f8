import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  checkinRequestValidator,
  moduleNameFor,
  tripwireReportValidator,
  type DesiredEvent,
  type TripwireEvent,
  tufTargetPath,
  enrollRequestValidator,
  type CheckinRequest,
  type CheckinResponse,
  type EnrollRequest,
} from '@livegraft/protocol';
import type { TestPatch } from './patches.ts';
import { TestRepo } from './tuf-repo.ts';

export const REGISTRATION_KEY = 'reg-key-0123456789';
export const HOST_TOKEN = 'host-token-abcdef';

/**
 * A small real HTTP server answering like the Livegraft server: enrol (with
 * the TUF root), check-in (validating the agent's body against the protocol
 * schema), and a TUF repository (consistent snapshots) over the published
 * patches, re-signed whenever `published` changes.
 */
export class FakeServer {
  readonly #server: Server;
  url = '';
  /** Published patches per kernel id; the highest level is "latest". */
  readonly published = new Map<string, TestPatch[]>();
  readonly checkins: CheckinRequest[] = [];
  readonly enrolls: EnrollRequest[] = [];
  readonly downloads: string[] = [];
  /** 'unsupported-404' answers check-in 404 KERNEL_UNSUPPORTED; 'unsupported-false' answers kernelSupported=false. */
  mode: 'normal' | 'unsupported-404' | 'unsupported-false' | 'error-500' = 'normal';
  checkinIntervalSec = 600;
  /** Extra bytes streamed (chunked, no content-length) after a module's real bytes. */
  oversizeBy = 0;
  /** Serve these bytes instead of the published ones. */
  overrideModuleBytes: Buffer | undefined;
  readonly repo = new TestRepo();
  /** Every TUF file requested, by served name (e.g. "timestamp.json", "targets/<kid>/2/<sha>.<name>.ko"). */
  readonly tufRequests: string[] = [];
  /** Takes over the answer for a TUF file when it returns true (faults: slow, truncated, swapped files). */
  tufHook: ((file: string, res: ServerResponse) => boolean) | undefined;
  /** Sent as `desired` in check-in answers when set. */
  desired: unknown;
  /** Sent as `root` in the enrol answer; default: the repository's current root. */
  enrollRoot: unknown;
  #fingerprint = '';
  /** Open push streams. */
  readonly streams = new Set<ServerResponse>();
  /** Every push stream request: its status and Last-Event-ID header. */
  readonly streamRequests: { status: number; lastEventId: string | undefined }[] = [];
  /** Sent as `retry:` on each stream. */
  streamRetryMs = 100;
  /** Numbers events (`id:`) when set. */
  eventIds = false;
  #eventSeq = 0;
  /** Tripwire events received. */
  readonly tripwires: TripwireEvent[] = [];
  /** The token was revoked: every host request answers 401. */
  revoked = false;
  /**
   * The Date header of every answer. Unset, none is sent: the tests' clocks
   * are fake, and a real Date would read as a skewed host clock.
   */
  date: string | undefined;

  constructor() {
    this.#server = createServer((req, res) => {
      res.sendDate = false;
      if (this.date !== undefined) res.setHeader('date', this.date);
      void this.#handle(req, res).catch((err: unknown) => this.#send(res, 500, { code: 'X', message: String(err) }));
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
    return this;
  }

  /** Pushes a `desired` event on every open stream. */
  push(event: DesiredEvent): void {
    const id = this.eventIds ? `id: ${++this.#eventSeq}\n` : '';
    for (const res of this.streams) res.write(`${id}event: desired\ndata: ${JSON.stringify(event)}\n\n`);
  }

  /** Revokes the host token and ends its streams, as the real server does. */
  revoke(): void {
    this.revoked = true;
    for (const res of this.streams) res.end();
  }

  async stop(): Promise<void> {
    for (const res of this.streams) res.end();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  publish(kernelId: string, patch: TestPatch): void {
    const list = this.published.get(kernelId) ?? [];
    list.push(patch);
    this.published.set(kernelId, list);
  }

  #send(res: ServerResponse, status: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  async #body(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  }

  #authorized(req: IncomingMessage): boolean {
    return !this.revoked && req.headers.authorization === `Bearer ${HOST_TOKEN}`;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = req.url ?? '';
    if (req.method === 'POST' && url === '/api/v1/hosts/enroll') {
      const body = enrollRequestValidator.parse(await this.#body(req));
      if (body.registrationKey !== REGISTRATION_KEY) {
        return this.#send(res, 403, { code: 'REGISTRATION_KEY_INVALID', message: 'the registration key is wrong' });
      }
      this.enrolls.push(body);
      const root =
        this.enrollRoot === undefined
          ? (JSON.parse(this.repo.rootBytes(1).toString('utf8')) as unknown)
          : this.enrollRoot;
      return this.#send(res, 201, { hostId: 'host-1', token: HOST_TOKEN, ...(root === null ? {} : { root }) });
    }
    if (req.method === 'POST' && url === '/api/v1/hosts/checkin') {
      if (!this.#authorized(req)) return this.#send(res, 401, { code: 'UNAUTHORIZED', message: 'bad token' });
      const body = await this.#body(req);
      this.checkins.push(body as CheckinRequest);
      const problems = checkinRequestValidator.problems(body);
      if (problems.length > 0)
        return this.#send(res, 400, { code: 'VALIDATION_FAILED', message: JSON.stringify(problems) });
      if (this.mode === 'error-500') return this.#send(res, 500, { code: 'INTERNAL', message: 'boom' });
      if (this.mode === 'unsupported-404') {
        return this.#send(res, 404, { code: 'KERNEL_UNSUPPORTED', message: 'no patches for this kernel' });
      }
      this.sync();
      const report = this.checkins.at(-1) as CheckinRequest;
      const list = this.published.get(report.kernel.id) ?? [];
      const top = [...list].sort((a, b) => b.manifest.level - a.manifest.level)[0];
      const answer: CheckinResponse = {
        kernelSupported: this.mode !== 'unsupported-false',
        latest:
          top === undefined || this.mode === 'unsupported-false'
            ? null
            : { kernelId: report.kernel.id, level: top.manifest.level, manifest: top.manifest },
        checkinIntervalSec: this.checkinIntervalSec,
        ...(this.desired === undefined ? {} : { desired: this.desired }),
      } as CheckinResponse;
      return this.#send(res, 200, answer);
    }
    if (req.method === 'GET' && url === '/api/v1/events/stream') {
      const lastEventId = req.headers['last-event-id'] as string | undefined;
      if (!this.#authorized(req)) {
        this.streamRequests.push({ status: 401, lastEventId });
        return this.#send(res, 401, { code: 'AUTH_INVALID', message: 'the host token was revoked' });
      }
      this.streamRequests.push({ status: 200, lastEventId });
      res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' });
      res.write(`retry: ${this.streamRetryMs}\n\n: hello\n\n`);
      this.streams.add(res);
      res.on('close', () => this.streams.delete(res));
      return;
    }
    if (req.method === 'POST' && url === '/api/v1/hosts/tripwire') {
      if (!this.#authorized(req)) return this.#send(res, 401, { code: 'AUTH_INVALID', message: 'revoked' });
      const body = tripwireReportValidator.parse(await this.#body(req));
      this.tripwires.push(...body.events);
      return this.#send(res, 200, { accepted: body.events.length });
    }
    if (req.method === 'GET' && url.startsWith('/tuf/')) {
      this.sync();
      const file = url.startsWith('/tuf/metadata/') ? url.slice('/tuf/metadata/'.length) : url.slice('/tuf/'.length);
      this.tufRequests.push(file);
      if (this.tufHook?.(file, res) === true) return;
      let bytes = this.repo.files.get(file);
      if (bytes === undefined) return this.#send(res, 404, { code: 'NOT_FOUND', message: file });
      if (file.startsWith('targets/')) {
        this.downloads.push(file);
        bytes = this.overrideModuleBytes ?? bytes;
        if (this.oversizeBy > 0) {
          // Chunked, so only the streaming cap can catch it.
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          res.write(bytes);
          res.write(Buffer.alloc(this.oversizeBy, 0x41));
          res.end();
          return;
        }
      }
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': bytes.length });
      res.end(bytes);
      return;
    }
    this.#send(res, 404, { code: 'NOT_FOUND', message: `${req.method} ${url}` });
  }

  /** Re-signs the repository when the published set changed (the server does this on publish). */
  sync(): void {
    const all: { path: string; patch: TestPatch }[] = [];
    for (const [kernelId, list] of this.published) {
      for (const patch of list) {
        const level = patch.manifest.level;
        all.push({ path: tufTargetPath(kernelId, level, moduleNameFor(kernelId, level)), patch });
      }
    }
    const fp = all
      .map(
        (a) =>
          `${a.path}:${createHash('sha256').update(a.patch.bytes).digest('hex')}:${JSON.stringify(a.patch.manifest)}`,
      )
      .join('|');
    if (fp === this.#fingerprint) return;
    this.#fingerprint = fp;
    this.repo.targets.clear();
    for (const a of all) this.repo.setTarget(a.path, a.patch.bytes, a.patch.manifest);
    this.repo.publish();
  }
}
