// Bridges one guest connection (QEMU guestfwd "cmd:" gives it as stdin/stdout)
// to the test server on the host's loopback. Loopback only, by construction.
import { connect } from 'node:net';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  process.stderr.write('usage: tcp-pipe.mjs PORT\n');
  process.exit(2);
}
const sock = connect({ host: '127.0.0.1', port });
process.stdin.pipe(sock);
sock.pipe(process.stdout);
sock.on('error', () => process.exit(1));
sock.on('close', () => process.exit(0));
process.stdin.on('end', () => sock.end());
