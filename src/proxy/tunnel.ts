// Upgrades other than WebSocket that a route lists in `upgrades` (say, a custom protocol
// over HTTP/1.1 Upgrade): the handshake goes through the route's breaker, and after the
// upstream's 101 for the same protocol the two sockets are piped byte for byte. The proxy
// knows nothing of the protocol's framing, so there is no ping, no close code, and no
// handshake retry; idle and lifetime limits still apply.
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError, errorResponse } from '../errors.js';
import { BreakerOpenError } from '../policies/breaker.js';
import { AttemptError, classifyError } from '../policies/outcome.js';
import { upgradeRequestHeaders } from './headers.js';
import type { Exchange } from './exchange.js';

const NOT_SENT = new Set(['content-length']);

/** The upstream answered 101 but not for the protocol asked: counts as a failure, never retried. */
export class FakeUpgradeError extends AttemptError {
  constructor(cause: Error) {
    super('reset', cause);
    this.name = 'FakeUpgradeError';
  }
}

/**
 * Relays an upstream's non-101 answer to an upgrade as a normal response, then closes.
 * `done` runs once, when the body has ended or either side has gone; a client that leaves
 * mid-body stops the relay, so a half-sent answer cannot hold the socket (or a drain) open.
 */
export function relayAnswer(res: ServerResponse, answer: IncomingMessage, attempts: number, done: () => void): void {
  const headers: string[] = [];
  const raw = answer.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const k = (raw[i] as string).toLowerCase();
    if (k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding' && k !== 'upgrade') headers.push(k, raw[i + 1] as string);
  }
  headers.push('x-outrigger-attempts', String(attempts));
  res.writeHead(answer.statusCode ?? 502, headers);
  let finished = false;
  const finish = () => {
    if (finished) return;
    finished = true;
    done();
  };
  // The server keeps half-open sockets, so a client that leaves shows as 'end', not 'close'.
  const sock = res.socket;
  const gone = () => {
    answer.destroy();
    sock?.destroy();
    finish();
  };
  sock?.once('end', gone);
  sock?.once('close', gone);
  pipeline(answer, res, (err) => {
    if (err) res.socket?.destroy();
    finish();
  });
}

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
    const headers = upgradeRequestHeaders(
      ex.req.rawHeaders,
      {
        clientAddress: ex.req.socket.remoteAddress ?? '',
        host: ex.authority,
        requestId: ex.requestId,
        upstreamHost: route.config.preserveHost ? ex.authority : endpoint.authority,
        via: ex.via,
      },
      NOT_SENT,
    );
    // The hop-by-hop Upgrade and Connection are the point of this request: set them again.
    headers.connection = 'Upgrade';
    headers.upgrade = String(ex.req.headers.upgrade);
    let connected = false;
    const request = endpoint.origin.startsWith('https:') ? httpsRequest : httpRequest;
    const r = request(endpoint.origin + ex.upstreamPath, { method: ex.method, headers, agent: false });
    // A client that leaves during the handshake ends it: nothing upstream is left dangling.
    const onClientGone = () => r.destroy(new AttemptError('client-abort'));
    ex.req.socket.once('close', onClientGone);
    r.once('close', () => ex.req.socket.off('close', onClientGone));
    const timer = setTimeout(() => {
      r.destroy();
      reject(new AttemptError('timeout', undefined, 'total'));
    }, Math.max(1, ex.remaining()));
    r.once('socket', (s: Socket) => s.once('connect', () => (connected = true)));
    r.once('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      clearTimeout(timer);
      if (String(res.headers.upgrade ?? '').trim().toLowerCase() !== token) {
        socket.destroy();
        reject(new FakeUpgradeError(new Error(`the upstream answered 101 but not for ${JSON.stringify(token)}`)));
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
      reject(err instanceof AttemptError ? err : new AttemptError(classifyError(err, connected, connected), err));
    });
    r.end();
  });
}

/**
 * Tunnels one non-WebSocket upgrade; `done` runs when both sockets are closed. The returned
 * function ends the tunnel at once (drain, shutdown).
 */
export function tunnel(ex: Exchange, token: string, client: Duplex, clientHead: Buffer, done: () => void): () => void {
  let cut: () => void = () => client.destroy();
  const route = ex.route;
  const res = ex.res;
  const once = () => handshake(ex, token);
  (route.breaker ? route.breaker.execute(once) : once()).then(
    (a) => {
      if (a.status !== 101) return relayAnswer(res, a.res, ex.attempts, done);
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
      cut = pipeBoth(ex, client as Socket, up.socket, done);
    },
    (err: unknown) => {
      let pe: ProxyError;
      if (err instanceof ProxyError) pe = err;
      else if (err instanceof BreakerOpenError) pe = new ProxyError('OUTRIGGER_BREAKER_OPEN', undefined, err.retryAfterSeconds);
      else if (err instanceof AttemptError && err.kind === 'client-abort') return done();
      else if (err instanceof AttemptError && err.kind === 'timeout') pe = new ProxyError('OUTRIGGER_TIMEOUT', 'the upstream did not answer the upgrade in time');
      else pe = new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE', `the upgrade failed: ${err instanceof AttemptError ? err.kind : String(err)}`);
      done();
      if (client.destroyed) return;
      const e = errorResponse(pe, route.name, ex.attempts, ex.requestId);
      res.writeHead(e.status, e.headers);
      res.end(e.body);
    },
  );
  return () => cut();
}

function pipeBoth(ex: Exchange, a: Socket, b: Socket, done: () => void): () => void {
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
  return end;
}
