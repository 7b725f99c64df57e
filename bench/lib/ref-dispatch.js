// dispatch-min: the thinnest forwarder undici allows, as in ../shared/README.md. Raw header
// arrays both ways and a raw Pool.dispatch handler, no header objects. This is the floor any
// undici-based proxy can reach; Outrigger's CPU per request is compared against it.
// Usage: node ref-dispatch.js --port P --target http://127.0.0.1:U
import http from 'node:http';
import { parseArgs } from 'node:util';
import { Pool } from 'undici';

const { values } = parseArgs({ options: { port: { type: 'string' }, target: { type: 'string' } } });
const pool = new Pool(values.target, { connections: 128, keepAliveTimeout: 4000 });
const hop = new Set(['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'te', 'trailer', 'proxy-authorization', 'proxy-authenticate']);

const server = http.createServer((req, res) => {
  const raw = req.rawHeaders;
  const headers = [];
  for (let i = 0; i < raw.length; i += 2) if (!hop.has(raw[i].toLowerCase())) headers.push(raw[i], raw[i + 1]);
  const body = req.method === 'GET' || req.method === 'HEAD' ? null : req;
  pool.dispatch({ path: req.url, method: req.method, headers, body }, {
    onConnect() {},
    onError() {
      if (!res.headersSent) { res.statusCode = 502; res.end(); } else res.destroy();
    },
    onHeaders(status, rawHeaders) {
      const out = [];
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const k = rawHeaders[i].toString('latin1');
        if (!hop.has(k.toLowerCase())) out.push(k, rawHeaders[i + 1].toString('latin1'));
      }
      res.writeHead(status, out);
      return true;
    },
    onData(chunk) {
      return res.write(chunk);
    },
    onComplete() {
      res.end();
    },
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
