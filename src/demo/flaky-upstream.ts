// A small upstream for `npm run demo`, with faults to switch on and watch:
//   GET  /items          200, but 503 for `failRate` of requests (retries hide them)
//   GET  /slow           answers after 3 s (the demo route's 1 s timeout fires)
//   POST /fault/down     every request now resets the connection (the breaker opens)
//   POST /fault/up       back to normal
import { createServer, type Server } from 'node:http';

export interface FlakyOptions {
  port: number;
  host?: string;
  failRate?: number;
}

export function startFlakyUpstream(opts: FlakyOptions): Promise<Server> {
  let down = false;
  const failRate = opts.failRate ?? 0.3;
  const server = createServer((req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (req.method === 'POST' && (path === '/fault/down' || path === '/fault/up')) {
      down = path === '/fault/down';
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end(down ? 'upstream is now down: every request resets\n' : 'upstream is back up\n');
      return;
    }
    if (down) {
      req.socket.destroy();
      return;
    }
    if (path === '/slow') {
      const t = setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('finally\n');
      }, 3000);
      res.on('close', () => clearTimeout(t));
      return;
    }
    if (path.startsWith('/items') && Math.random() < failRate) {
      res.writeHead(503, { 'content-type': 'text/plain', 'content-length': '12' });
      res.end('flaky: 503\n\n');
      return;
    }
    const body = JSON.stringify({ path, items: [{ id: 1, name: 'paddle' }, { id: 2, name: 'float' }], at: new Date().toISOString() }) + '\n';
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '127.0.0.1', () => resolve(server));
  });
}
