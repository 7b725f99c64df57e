// Upgrades other than WebSocket that a route lists in `upgrades` (say, a custom protocol
// over HTTP/1.1 Upgrade): the handshake goes through the route's breaker, and after the
// upstream's 101 for the same protocol the two sockets are piped byte for byte. The proxy
// knows nothing of the protocol's framing, so there is no ping, no close code, and no
// handshake retry; idle and lifetime limits still apply.
import { request, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError, errorResponse } from '../errors.js';
import { BreakerOpenError } from '../policies/breaker.js';
import { AttemptError, classifyError } from '../policies/outcome.js';
import { upgradeRequestHeaders } from './headers.js';
import type { Exchange } from './exchange.js';

const NOT_SENT = new Set(['content-length']);

interface Upgraded {
  status: 101;
  res: IncomingMessage;
  socket: Socket;
  head: Buffer;
}
type Answer = Upgraded | { status: number; res: IncomingMessage };

function handshake(ex: Exchange, token: string): Promise<Answer> {
  const route = ex.route;
  if (ex.endpoint < 0) ex.endpoint = route.upstream.pick();
  const endpoint = route.upstream.endpoints[ex.endpoint];
  ex.attempts++;
  return new Promise<Answer>((resolve, reject) => {
    if (!endpoint) return reject(new AttemptError('connect-failure'));
    const url = new URL(endpoint.origin);
    const headers = upgradeRequestHeaders(
      ex.req.rawHeaders,
      {
        clientAddress: ex.req.socket.remoteAddress ?? '',
        host: ex.authority,
        requestId: ex.requestId,
        upstreamHost: route.config.preserveHost ? ex.authority : endpoint.authority,
      },
      NOT_SENT,
    );
    // The hop-by-hop Upgrade and Connection are the point of this request: set them again.
    headers.connection = 'Upgrade';
    headers.upgrade = String(ex.req.headers.upgrade);
    let connected = false;
    const r = request({ hostname: url.hostname, port: url.port || 80, method: ex.method, path: ex.upstreamPath, headers, agent: false });
    const timer = setTimeout(() => {
      r.destroy();
      reject(new AttemptError('timeout', undefined, 'total'));
    }, Math.max(1, ex.remaining()));
    r.once('socket', (s: Socket) => s.once('connect', () => (connected = true)));
    r.once('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (String(res.headers.upgrade ?? '').trim().toLowerCase() !== token) {
        socket.destroy();
        reject(new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE', `the upstream answered 101 but not for ${JSON.stringify(token)}`));
        return;
      }
      resolve({ status: 101, res, socket, head });
    });
    r.once('response', (res: IncomingMessage) => {
      clearTimeout(timer);
      resolve({ status: res.statusCode ?? 502, res });
    });
    r.once('error', (err) => {
      clearTimeout(timer);
      reject(new AttemptError(classifyError(err, connected, connected), err));
    });
    r.end();
  });
}

/** Tunnels one non-WebSocket upgrade; `done` runs when both sockets are closed. */
export function tunnel(ex: Exchange, token: string, client: Duplex, clientHead: Buffer, done: () => void): void {
  const route = ex.route;
  const res = ex.res;
  const once = () => handshake(ex, token);
  (route.breaker ? route.breaker.execute(once) : once()).then(
    (a) => {
      if (a.status !== 101) {
        // Not upgraded: relay the answer as a normal response, then close.
        const headers: string[] = [];
        for (let i = 0; i < a.res.rawHeaders.length; i += 2) {
          const k = (a.res.rawHeaders[i] as string).toLowerCase();
          if (k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding' && k !== 'upgrade') headers.push(k, a.res.rawHeaders[i + 1] as string);
        }
        headers.push('x-outrigger-attempts', String(ex.attempts));
        res.writeHead(a.status, headers);
        a.res.pipe(res);
        a.res.once('end', done);
        return;
      }
      const up = a as Upgraded;
      if (client.destroyed) {
        up.socket.destroy();
        return done();
      }
      let head = 'HTTP/1.1 101 Switching Protocols\r\n';
      for (let i = 0; i < up.res.rawHeaders.length; i += 2) head += `${up.res.rawHeaders[i] as string}: ${up.res.rawHeaders[i + 1] as string}\r\n`;
      head += `x-outrigger-attempts: ${ex.attempts}\r\n\r\n`;
      // The ServerResponse only stood by for error answers; from here the socket is raw.
      res.detachSocket(client as Socket);
      client.write(head);
      if (up.head.length > 0) client.write(up.head);
      if (clientHead.length > 0) up.socket.write(clientHead);
      pipeBoth(ex, client as Socket, up.socket, done);
    },
    (err: unknown) => {
      let pe: ProxyError;
      if (err instanceof ProxyError) pe = err;
      else if (err instanceof BreakerOpenError) pe = new ProxyError('OUTRIGGER_BREAKER_OPEN', undefined, err.retryAfterSeconds);
      else if (err instanceof AttemptError && err.kind === 'timeout') pe = new ProxyError('OUTRIGGER_TIMEOUT', 'the upstream did not answer the upgrade in time');
      else pe = new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE', `the upgrade failed: ${err instanceof AttemptError ? err.kind : String(err)}`);
      done();
      if (client.destroyed) return;
      const e = errorResponse(pe, route.name, ex.attempts, ex.requestId);
      res.writeHead(e.status, e.headers);
      res.end(e.body);
    },
  );
}

function pipeBoth(ex: Exchange, a: Socket, b: Socket, done: () => void): void {
  const ws = ex.route.config.websocket;
  let finished = false;
  const timers: NodeJS.Timeout[] = [];
  const end = () => {
    if (finished) return;
    finished = true;
    for (const t of timers) clearTimeout(t);
    a.destroy();
    b.destroy();
    done();
  };
  a.pipe(b);
  b.pipe(a);
  // A half-close is passed on by pipe(); a reset or error on either side ends both.
  a.once('close', end);
  b.once('close', end);
  a.on('error', end);
  b.on('error', end);
  if (ws.idleTimeout > 0) {
    // Socket idle time counts reads and writes, so one side sees traffic in either direction.
    a.setTimeout(ws.idleTimeout, end);
  }
  if (ws.maxLifetime > 0) timers.push(setTimeout(end, ws.maxLifetime));
}
