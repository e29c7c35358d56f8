import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

/** Largest JSON answer the front end rewrites; anything else is passed through untouched. */
const MAX_REWRITE_BYTES = 4 * 1024 * 1024;

/**
 * A man in the middle between the guest and the real server, on loopback.
 * It forwards everything unchanged until a test installs a rewrite, which
 * then plays a compromised server or network: it may alter answers, never
 * the signing keys, so TUF and the agent's own checks must catch it.
 */
export class Front {
  private server: Server | undefined;
  /** Rewrites the JSON answer of requests whose path starts with the key. */
  readonly rewrites = new Map<string, (body: unknown) => unknown>();
  port = 0;

  constructor(private readonly upstreamPort: number) {}

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.forward(req, res));
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const addr = this.server.address();
    this.port = typeof addr === 'object' && addr ? addr.port : 0;
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const rewrite = [...this.rewrites].find(([prefix]) => (req.url ?? '').startsWith(prefix))?.[1];
    const up = request(
      { host: '127.0.0.1', port: this.upstreamPort, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        if (!rewrite || !(answer.headers['content-type'] ?? '').includes('json')) {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        answer.on('data', (c: Buffer) => {
          size += c.length;
          if (size <= MAX_REWRITE_BYTES) chunks.push(c);
        });
        answer.on('end', () => {
          const body = JSON.stringify(rewrite(JSON.parse(Buffer.concat(chunks).toString('utf8'))));
          const headers = { ...answer.headers, 'content-length': String(Buffer.byteLength(body)) };
          delete headers['transfer-encoding'];
          delete headers['etag'];
          res.writeHead(answer.statusCode ?? 502, headers);
          res.end(body);
        });
      },
    );
    up.on('error', () => {
      if (!res.headersSent) res.writeHead(502);
      res.end();
    });
    req.pipe(up);
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}
