// Raw byte tunnel: the reference for the websocket-relay scenario. Each TCP connection is
// piped to the upstream and back, byte for byte: the HTTP upgrade handshake passes
// unchanged, and after the 101 the WebSocket frames are never parsed. It is the floor for
// any proxy that forwards WebSocket traffic in a Node process (no routing, policies,
// metrics, framing or close handling).
// Usage: node ref-tunnel.js --port P --target http://127.0.0.1:U
import net from 'node:net';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { port: { type: 'string' }, target: { type: 'string' } } });
const up = new URL(values.target);
const server = net.createServer((c) => {
  const u = net.connect(Number(up.port), up.hostname);
  c.setNoDelay(true);
  u.setNoDelay(true);
  c.pipe(u);
  u.pipe(c);
  const cut = () => {
    c.destroy();
    u.destroy();
  };
  c.on('error', cut);
  u.on('error', cut);
  c.on('close', cut);
  u.on('close', cut);
});
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
