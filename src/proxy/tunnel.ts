// Upgrades other than WebSocket that a route lists in `upgrades` (say, a custom protocol
// over HTTP/1.1 Upgrade): the handshake attempt at the bottom of the route's policy stack,
// and, after the upstream's 101 for the same protocol, the two sockets piped byte for
// byte. The proxy knows nothing of the protocol's framing, so there is no ping and no close
// code; idle and lifetime limits still apply. Also the reply for any non-101 answer to an
// upgrade, WebSocket included: relayed as HTTP, then the upstream socket is closed.
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream';
import type { Socket } from 'node:net';
import { AttemptError, InvalidUpgradeError, attemptOutcomeOfFailure, classifyError } from '../exchange/outcome.js';
import { attemptBudget } from '../policies/timeout.js';
import type { Exchange, Reply } from './exchange.js';
import { upgradeRequestHeaders } from './headers.js';

const NOT_SENT = new Set(['content-length']);

/**
 * An upstream's non-101 answer to an upgrade (404, 426, 503, ...), relayed to the client as
 * a normal response; the client connection and the upstream socket are then closed. A
 * client that leaves mid-body stops the relay, so a half-sent answer cannot hold the socket
 * (or a drain) open.
 */
export class AnswerReply implements Reply {
  readonly status: number;
  readonly retryAfter: string | null;

  constructor(
    private readonly answer: IncomingMessage,
    /** Closes what carried the answer (the upstream request and its socket). */
    private readonly closeUpstream: () => void,
  ) {
    this.status = answer.statusCode ?? 502;
    const ra = answer.headers['retry-after'];
    this.retryAfter = typeof ra === 'string' ? ra : null;
  }

  send(ex: Exchange): void {
    const res = ex.res;
    const answer = this.answer;
    const headers: string[] = [];
    const raw = answer.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const k = (raw[i] as string).toLowerCase();
      if (k !== 'connection' && k !== 'keep-alive' && k !== 'transfer-encoding' && k !== 'upgrade') headers.push(k, raw[i + 1] as string);
    }
    headers.push('x-outrigger-attempts', String(ex.attempts), 'connection', 'close');
    ex.status = this.status;
    res.writeHead(this.status, headers);
    let finished = false;
    // A body that stalls must not hold the sockets, the connection slot and a drain forever:
    // it gets the route's bodyTimeout between chunks (the handshake timeout when that is 0).
    const cfg = ex.route.config;
    const idle = cfg.bodyTimeout > 0 ? cfg.bodyTimeout : cfg.websocket.handshakeTimeout;
    let stall: NodeJS.Timeout | null = null;
    const arm = () => {
      if (stall !== null) clearTimeout(stall);
      stall = setTimeout(() => {
        ex.route.metrics.timeout('body');
        res.socket?.destroy();
        finish();
      }, idle);
    };
    answer.on('data', arm);
    arm();
    const finish = () => {
      if (finished) return;
      finished = true;
      if (stall !== null) clearTimeout(stall);
      answer.destroy();
      answer.socket?.destroy();
      this.closeUpstream();
    };
    // The server keeps half-open sockets, so a client that leaves shows as 'end', not 'close'.
    const sock = res.socket;
    const gone = () => {
      sock?.destroy();
      finish();
    };
    sock?.once('end', gone);
    sock?.once('close', gone);
    if (ex.method === 'HEAD') {
      res.end();
      finish();
      return;
    }
    pipeline(answer, res, (err) => {
      if (err) res.socket?.destroy();
      finish();
    });
  }

  discard(): void {
    this.answer.destroy();
    this.answer.socket?.destroy();
    this.closeUpstream();
  }
}

/** outrigger_upstream_attempts_total for a handshake attempt: a 101 is a success. */
export function countHandshake(ex: Exchange, r: Reply | null, err: Error | null): void {
  if (err instanceof AttemptError) {
    const outcome = attemptOutcomeOfFailure(err.kind);
    if (outcome !== null) ex.route.metrics.attempt(outcome);
  } else if (r !== null) ex.route.metrics.attempt(r.status === 101 ? 'success' : r.status >= 500 ? 'http_5xx' : 'http_4xx');
}

/** The upstream's 101 for the protocol asked: the raw socket, not yet piped. */
class SwitchedReply implements Reply {
  readonly status = 101;
  readonly retryAfter = null;

  constructor(
    private readonly answer: IncomingMessage,
    private readonly socket: Socket,
    private readonly head: Buffer,
  ) {}

  send(ex: Exchange): void {
    const up = ex.upgrade;
    if (up === null) throw new Error('a tunnel reply outside an upgrade exchange');
    const client = up.socket as Socket;
    if (client.destroyed) return this.discard();
    let head = 'HTTP/1.1 101 Switching Protocols\r\n';
    const raw = this.answer.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) head += `${raw[i] as string}: ${raw[i + 1] as string}\r\n`;
    head += `x-outrigger-attempts: ${ex.attempts}\r\n\r\n`;
    // The ServerResponse only stood by for error answers; from here the socket is raw.
    ex.res.detachSocket(client);
    client.write(head);
    if (this.head.length > 0) client.write(this.head);
    if (up.head.length > 0) this.socket.write(up.head);
    ex.status = 101;
    up.switched();
    let done: (reason: string, info: Record<string, unknown>) => void = () => undefined;
    const started = Date.now();
    const end = pipeBoth(ex, client, this.socket, (reason) => done(reason, { durationMs: Date.now() - started, upgrade: up.token }));
    done = up.register(() => end('drain'));
  }

  discard(): void {
    this.socket.destroy();
  }
}

/** One upgrade handshake for `ex.upgrade.token` with the upstream, timed like any attempt. */
export function tunnelAttempt(ex: Exchange, endpointIndex: number, probe: boolean): Promise<Reply> {
  const route = ex.route;
  const cfg = route.config;
  const endpoint = route.upstream.endpoints[endpointIndex];
  const token = ex.upgrade?.token ?? '';
  return new Promise<Reply>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | null = null;
    const settle = (r: Reply | null, err: Error | null): void => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      if (ex.cancel === cancel) ex.cancel = null;
      countHandshake(ex, r, err);
      if (err !== null) reject(err);
      else resolve(r as Reply);
    };
    let r: ReturnType<typeof httpRequest> | null = null;
    const cancel = (err: Error): void => {
      r?.destroy();
      settle(null, err);
    };
    if (endpoint === undefined) return settle(null, new AttemptError('connect-failure'));
    const { ms, kind, probeLimited } = attemptBudget(ex.remaining(), cfg.retry.perTryTimeout, probe ? cfg.breaker.probeTimeout : Infinity);
    if (ms <= 0) return settle(null, new AttemptError('timeout', undefined, 'total'));
    const headers = upgradeRequestHeaders(
      ex.req.rawHeaders,
      { clientAddress: ex.req.socket.remoteAddress ?? '', host: ex.authority, requestId: ex.requestId, upstreamHost: cfg.preserveHost ? ex.authority : endpoint.authority, via: ex.via },
      NOT_SENT,
    );
    // The hop-by-hop Upgrade and Connection are the point of this request: set them again.
    headers.connection = 'Upgrade';
    headers.upgrade = String(ex.req.headers.upgrade);
    let connected = false;
    const request = endpoint.origin.startsWith('https:') ? httpsRequest : httpRequest;
    // The path goes as routed: a URL string would be re-parsed with WHATWG rules, which
    // resolve `..` and `%2e` segments and could reach another path than the route matched.
    const origin = new URL(endpoint.origin);
    const req = request({ protocol: origin.protocol, hostname: origin.hostname.replace(/^\[|\]$/g, ''), port: origin.port || undefined, path: ex.upstreamPath, method: ex.method, headers, agent: false });
    r = req;
    ex.cancel = cancel;
    if (ms !== Infinity) {
      timer = setTimeout(() => {
        timer = null;
        route.metrics.timeout(kind);
        req.destroy();
        settle(null, new AttemptError('timeout', undefined, kind, probeLimited));
      }, ms);
    }
    req.once('socket', (s: Socket) => s.once('connect', () => (connected = true)));
    req.once('upgrade', (res: IncomingMessage, socket: Socket, head: Buffer) => {
      if (settled) return socket.destroy();
      if (String(res.headers.upgrade ?? '').trim().toLowerCase() !== token) {
        socket.destroy();
        return settle(null, new InvalidUpgradeError(`a 101 that is not for ${JSON.stringify(token)}`));
      }
      settle(new SwitchedReply(res, socket, head), null);
    });
    req.once('response', (res: IncomingMessage) => {
      if (settled) return res.destroy();
      const status = res.statusCode ?? 0;
      if (status < 200) {
        res.destroy();
        req.destroy();
        return settle(null, new InvalidUpgradeError(status === 101 ? `a 101 without Upgrade: ${token}` : `an interim ${status} answer`));
      }
      const sock = res.socket;
      settle(new AnswerReply(res, () => {
        req.destroy();
        sock?.destroy();
      }), null);
    });
    req.once('error', (err) => {
      settle(null, new AttemptError(classifyError(err, connected, connected), err));
    });
    req.end();
  });
}

/** Pipes the two sockets until either ends; returns the function that cuts them both. */
function pipeBoth(ex: Exchange, a: Socket, b: Socket, done: (reason: string) => void): (reason: string) => void {
  const ws = ex.route.config.websocket;
  let finished = false;
  const timers: NodeJS.Timeout[] = [];
  const end = (reason: string) => {
    if (finished) return;
    finished = true;
    for (const t of timers) clearTimeout(t);
    a.destroy();
    b.destroy();
    done(reason);
  };
  a.pipe(b);
  b.pipe(a);
  // A half-close is passed on by pipe(); a reset or error on either side ends both.
  a.once('close', () => end('client'));
  b.once('close', () => end('upstream'));
  a.on('error', () => end('error'));
  b.on('error', () => end('error'));
  if (ws.idleTimeout > 0) {
    // Socket idle time counts reads and writes, so one side sees traffic in either direction.
    a.setTimeout(ws.idleTimeout, () => end('idle'));
  }
  if (ws.maxLifetime > 0) timers.push(setTimeout(() => end('lifetime'), ws.maxLifetime));
  return end;
}
