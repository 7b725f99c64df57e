// WebSocket echo upstream for the websocket scenario (ws package, no compression).
// Plain HTTP requests get a 128-byte 200 so health probes work.
// Usage: node ws-echo-server.js --port P
import http from 'node:http';
import { parseArgs } from 'node:util';
import { WebSocketServer } from 'ws';
import { BODY_128 } from './body.js';

const { values } = parseArgs({ options: { port: { type: 'string' } } });
const server = http.createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(BODY_128) });
  res.end(BODY_128);
});
const wss = new WebSocketServer({ server, perMessageDeflate: false });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});
});
server.listen(Number(values.port), '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
