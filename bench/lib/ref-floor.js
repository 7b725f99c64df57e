// The server-side floor: node:http answering by itself, no proxying, with the bytes Outrigger's
// breaker-open fallback sends (503, x-outrigger-fallback, an 8-byte body). No Node proxy can
// answer faster than this on the same machine, so fail-fast is compared against it as well.
// Usage: node ref-floor.js --port P [--spin-us N]
import http from 'node:http';
import { parseArgs } from 'node:util';

// --target is accepted (startNodeRef passes it to every reference) and unused: nothing is proxied.
// --spin-us N adds N µs of busy CPU per request (default 0): the same bytes and syscalls at a
// lower rate, to tell what costs more per request only because fewer are answered per second.
const { values } = parseArgs({ options: { port: { type: 'string' }, target: { type: 'string' }, 'spin-us': { type: 'string' } } });
const spinNs = BigInt(Math.round(Number(values['spin-us'] ?? 0) * 1000));
const body = Buffer.from('fallback');
const headers = ['content-length', '8', 'x-outrigger-fallback', 'breaker-open'];

const server = http.createServer((req, res) => {
  // Read (and discard) any request body, as the proxy does before answering.
  req.resume();
  if (spinNs > 0n) {
    const until = process.hrtime.bigint() + spinNs;
    while (process.hrtime.bigint() < until);
  }
  res.writeHead(503, headers);
  res.end(body);
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
