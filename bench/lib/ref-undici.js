// The thinnest undici forwarder we could write: the ceiling for any Node proxy.
// Usage: node ref-undici.js --port P --target http://127.0.0.1:U
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({ options: { port: { type: 'string' }, target: { type: 'string' } } });
const pool = new Pool(values.target, { connections: 128, keepAliveTimeout: 4000 });
const hop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection']);

const server = http.createServer((req, res) => {
  const headers = {};
  for (const k in req.headers) if (!hop.has(k)) headers[k] = req.headers[k];
  const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
  pool.stream({ path: req.url, method: req.method, headers, body, opaque: res }, ({ statusCode, headers: h, opaque }) => {
    for (const k of hop) delete h[k];
    opaque.writeHead(statusCode, h);
    return opaque;
  }, (err) => {
    if (err && !res.headersSent) { res.statusCode = 502; res.end(); } else if (err) res.destroy();
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
