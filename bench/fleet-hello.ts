// bench/fleet-hello: the ceiling for bench/fleet.ts's check-in throughput, a
// bare Fastify hello-world on loopback (same framework, same machine, same
// load generator). Prints "listening <url>" once ready.
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 0);
const app = Fastify({ logger: false });
app.get('/hello', () => ({ hello: 'world' }));
app.post('/hello', () => ({ hello: 'world' }));
const url = await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`listening ${url}\n`);
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
