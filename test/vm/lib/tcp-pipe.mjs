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
// Exit only once everything the server sent has been handed to QEMU: stdout
// may be a socket (asynchronous), and exiting with writes still queued would
// cut an answer short (the guest then sees UND_ERR_SOCKET), more likely when a
// loaded machine leaves QEMU slow to read.
let done = false;
const finish = (code) => {
  if (done) return;
  done = true;
  process.stdout.write('', () => process.exit(code));
};
sock.on('error', () => finish(1));
sock.on('close', () => finish(0));
process.stdin.on('end', () => sock.end());
