// bench/fleet-hello: the ceiling for bench/fleet.ts's check-in throughput, a
// bare Fastify hello-world on loopback (same framework, same machine, same
// load generator). Prints "listening <url>" once ready.
import Fastify from 'fastify';

const port = Number(process.argv[2] ?? 0);
const app = Fastify({ logger: false });
app.get('/hello', () => ({ hello: 'world' }));
app.post('/hello', () => ({ hello: 'world' }));
// The process's own CPU (user + system, µs), read before and after a load run: how much of a core
// the hello-world itself used, so a ceiling set by the load generator shows as such.
app.get('/cpu', () => {
  const { user, system } = process.cpuUsage();
  return { totalUs: user + system };
});
const url = await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`listening ${url}\n`);
process.on('SIGTERM', () => {
  void app.close().then(() => process.exit(0));
});
