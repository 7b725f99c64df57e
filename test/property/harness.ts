// The property test's harness (configs.test.ts): the upstream shared by every case, the
// bounded clients that send a case's HTTP request and WebSocket upgrade, and the probes.
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { refusedPort } from '../helpers/upstream.js';
import type { Case, Json } from './generate.js';

/** Each client request gives up after this long (a case whose route has no deadline may hang). */
export const CLIENT_TIMEOUT_MS = 1500;
/** /livez and /metrics must answer within this long. */
export const PROBE_TIMEOUT_MS = 2000;
let requestNonce = 0;

// --- the shared upstream -------------------------------------------------------------------

export interface Upstream {
  server: Server;
  port: number;
  dead: number;
  close(): Promise<void>;
}

const BIG = Buffer.alloc(256 * 1024, 'b');
const seenIds = new Map<string, number>();

function answerHttp(req: IncomingMessage, res: ServerResponse): void {
  const behave = String(req.headers['x-prop-behave'] ?? 'ok');
  const id = String(req.headers['x-request-id'] ?? '');
  const n = (seenIds.get(id) ?? 0) + 1;
  seenIds.set(id, n);
  const send = (status: number, body: string | Buffer = `${status} ${req.method} ${req.url}`, headers: Record<string, string> = {}) => {
    if (res.destroyed) return;
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': String(Buffer.byteLength(body)), ...headers });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  switch (behave) {
    case 'big':
      return send(200, BIG);
    case 'slow':
      setTimeout(() => send(200), 50).unref();
      return;
    case '404':
      return send(404);
    case '500':
      return send(500);
    case '503':
      return send(503);
    case '503-retry-after':
      return send(503, 'later', { 'retry-after': '0' });
    case '429-retry-after':
      return send(429, 'later', { 'retry-after': 'Wed, 21 Oct 2015 07:28:00 GMT' });
    case 'flaky-503':
      return n === 1 ? send(503) : send(200);
    case 'flaky-reset':
      if (n === 1) return void req.socket.destroy();
      return send(200);
    case 'reset':
      return void req.socket.destroy();
    case 'reset-mid-body':
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('partial-');
      setTimeout(() => res.socket?.destroy(), 20).unref();
      return;
    case '204':
      res.writeHead(204);
      return void res.end();
    case 'hang':
      return; // never answers; the proxy's close destroys the socket
    default:
      return send(200);
  }
}

export async function startSharedUpstream(): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const server = createServer((req, res) => {
    req.on('error', () => {});
    res.on('error', () => {});
    // Read the whole body first, as a real server would before answering.
    req.resume();
    req.on('end', () => answerHttp(req, res));
  });
  server.keepAliveTimeout = 10_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  server.on('clientError', (_err, socket: Socket) => socket.destroy());
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => [...offered][0] ?? false });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => {});
    const behave = String(req.headers['x-prop-ws'] ?? 'echo');
    const accept = (greet: boolean) =>
      wss.handleUpgrade(req, socket, head, (ws) => {
        ws.on('error', () => {});
        if (greet) ws.send('hello');
        ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      });
    switch (behave) {
      case 'refuse':
        return void socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 7\r\nconnection: close\r\n\r\nrefused');
      case 'reset':
        return void socket.destroy();
      case 'slow':
        setTimeout(() => !socket.destroyed && accept(false), 100).unref();
        return;
      case 'greet':
        return accept(true);
      default:
        return accept(false);
    }
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    dead: await refusedPort(),
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        wss.close();
        server.close(() => r());
      }),
  };
}

// --- clients, each bounded -----------------------------------------------------------------

export interface HttpOutcome {
  status: number | null;
  error?: string;
  proxyError?: string;
}

export function sendHttp(base: string, c: Case): Promise<HttpOutcome> {
  const u = new URL(base);
  const p = c.probe;
  return new Promise((resolve) => {
    let done = false;
    const finish = (o: HttpOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(o);
    };
    const headers: Record<string, string> = { host: p.host, 'x-request-id': `prop-${c.seed}-${++requestNonce}-http`, ...p.headers };
    if (p.body !== undefined) headers['content-length'] = String(Buffer.byteLength(p.body));
    const req = request({ host: u.hostname, port: u.port, method: p.method, path: p.path, headers, agent: false }, (res) => {
      const proxyError = res.headers['x-outrigger-error'] as string | undefined;
      res.on('data', () => {});
      res.on('end', () => finish({ status: res.statusCode ?? null, ...(proxyError ? { proxyError } : {}) }));
      res.on('error', (err) => finish({ status: res.statusCode ?? null, error: `response: ${err.message}`, ...(proxyError ? { proxyError } : {}) }));
      res.on('aborted', () => finish({ status: res.statusCode ?? null, error: 'response aborted', ...(proxyError ? { proxyError } : {}) }));
    });
    const timer = setTimeout(() => {
      req.destroy();
      finish({ status: null, error: `no answer within ${CLIENT_TIMEOUT_MS} ms` });
    }, CLIENT_TIMEOUT_MS);
    req.on('error', (err: NodeJS.ErrnoException) => finish({ status: null, error: err.code ?? err.message }));
    req.end(p.body);
  });
}

export interface WsOutcome {
  outcome: 'echoed' | 'opened' | 'refused' | 'error' | 'timeout';
  status?: number;
  detail?: string;
  proxyError?: string;
}

export function sendUpgrade(base: string, c: Case): Promise<WsOutcome> {
  const p = c.probe.ws;
  return new Promise((resolve) => {
    let done = false;
    const message = `message ${c.index}`;
    const ws = new WebSocket(`${base.replace(/^http/, 'ws')}${p.path}`, p.protocols, {
      headers: { host: c.probe.host, 'x-request-id': `prop-${c.seed}-${++requestNonce}-ws`, ...p.headers },
      perMessageDeflate: p.deflate,
      handshakeTimeout: CLIENT_TIMEOUT_MS,
    });
    let opened = false;
    const finish = (o: WsOutcome) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      ws.removeAllListeners('message');
      ws.on('error', () => {});
      if (ws.readyState === WebSocket.OPEN) ws.close(1000);
      else ws.terminate();
      // A peer that does not answer the close frame is cut shortly after.
      setTimeout(() => ws.terminate(), 500).unref();
      resolve(o);
    };
    const timer = setTimeout(() => finish({ outcome: opened ? 'opened' : 'timeout', detail: `${opened ? 'no echo' : 'no handshake answer'} within ${CLIENT_TIMEOUT_MS + 500} ms` }), CLIENT_TIMEOUT_MS + 500);
    ws.on('open', () => {
      opened = true;
      ws.send(message);
    });
    ws.on('message', (data) => {
      if (String(data) === message) finish({ outcome: 'echoed' });
    });
    ws.on('unexpected-response', (_req, res: IncomingMessage) => {
      const proxyError = res.headers['x-outrigger-error'] as string | undefined;
      res.resume();
      finish({ outcome: 'refused', status: res.statusCode ?? 0, ...(proxyError ? { proxyError } : {}) });
    });
    ws.on('error', (err) => finish({ outcome: opened ? 'opened' : 'error', detail: err.message }));
    ws.on('close', (code) => finish({ outcome: opened ? 'opened' : 'error', detail: `closed ${code}` }));
  });
}

export function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(PROBE_TIMEOUT_MS, () => req.destroy(new Error(`GET ${url}: no answer within ${PROBE_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/** Sum of outrigger_internal_errors_total over every route; null when the metric is missing. */
export function internalErrors(text: string): number | null {
  if (!/^# TYPE outrigger_internal_errors_total counter$/m.test(text)) return null;
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith('outrigger_internal_errors_total')) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

// --- the run -------------------------------------------------------------------------------

export function fill(v: Json, up: Upstream): Json {
  if (typeof v === 'string') {
    return v
      .replace('{{UP}}', `http://127.0.0.1:${up.port}`)
      .replace('{{UP_LOCALHOST}}', `http://localhost:${up.port}`)
      .replace('{{TLS}}', `https://127.0.0.1:${up.port}`)
      .replace('{{DEAD}}', `http://127.0.0.1:${up.dead}`);
  }
  if (Array.isArray(v)) return v.map((x) => fill(x, up));
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fill(x, up)]));
  return v;
}

