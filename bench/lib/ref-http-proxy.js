// node-http-proxy with a keep-alive agent: what most Node users deploy today.
// Also proxies WebSocket upgrades (ws: true), for the websocket scenario.
// Usage: node ref-http-proxy.js --port P --target http://127.0.0.1:U
import http from 'node:http';
import { parseArgs } from 'node:util';
import httpProxy from 'http-proxy';

const { values } = parseArgs({ options: { port: { type: 'string' }, target: { type: 'string' } } });
const agent = new http.Agent({ keepAlive: true, maxSockets: 128, keepAliveMsecs: 1000 });
const proxy = httpProxy.createProxyServer({ target: values.target, agent, ws: true, xfwd: true });
proxy.on('error', (err, req, res) => {
  if (res && typeof res.writeHead === 'function' && !res.headersSent) {
    res.writeHead(502);
    res.end();
  } else if (res && typeof res.destroy === 'function') {
    res.destroy();
  }
});
const server = http.createServer((req, res) => proxy.web(req, res));
server.on('upgrade', (req, socket, head) => proxy.ws(req, socket, head));
server.keepAliveTimeout = 65_000;
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
