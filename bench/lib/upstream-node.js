// Fallback upstream when nginx is absent: a node:http server with a fixed
// 128-byte body. Optional random 503s (--fail-rate 0.2). A second port serves
// stub_status-like counters so the bench can count attempts at the upstream.
// With --h2c-port H, the same answer over cleartext HTTP/2 (prior knowledge) on H as well.
// Usage: node upstream-node.js --port P --stats-port S [--fail-rate F] [--h2c-port H]
import http from 'node:http';
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import { BODY_128 } from './body.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    'stats-port': { type: 'string' },
    'fail-rate': { type: 'string', default: '0' },
    'h2c-port': { type: 'string' },
  },
});
const failRate = Number(values['fail-rate']);
const ok = Buffer.from(BODY_128);
const fail = Buffer.from('upstream says 503\n');
let requests = 0;

const handler = (req, res) => {
  requests++;
  const failing = failRate > 0 && Math.random() < failRate;
  const body = failing ? fail : ok;
  res.writeHead(failing ? 503 : 200, { 'content-type': 'text/plain', 'content-length': body.length });
  res.end(body);
  req.resume();
};
const server = http.createServer(handler);
server.keepAliveTimeout = 65_000;
server.headersTimeout = 66_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;
server.listen(Number(values.port), '127.0.0.1');
if (values['h2c-port']) http2.createServer({ settings: { maxConcurrentStreams: 128 } }, handler).listen(Number(values['h2c-port']), '127.0.0.1');

http
  .createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(`Active connections: 0\nserver accepts handled requests\n 0 0 ${requests}\n`);
  })
  .listen(Number(values['stats-port']), '127.0.0.1');

process.on('SIGTERM', () => process.exit(0));
