// WebSocket proxying. The handshake runs under the route's policies (connection cap,
// breaker, retry with backoff before the upstream answered, handshake timeout); after a
// genuine 101 the two legs are relayed message by message with `ws` on each side.
//
// Why a message relay and not a raw socket pipe: the proxy must ping the upstream and
// close both sides with 1001 on drain, idle or lifetime. Injecting those frames into a
// raw byte pipe would need a frame parser of our own; `ws` owns framing on each leg, and
// close codes, pings and pongs are relayed explicitly. Subprotocols pass through (the
// client leg selects exactly what the upstream chose); permessage-deflate is negotiated
// per leg, and only offered upstream when the client offered it.
import { randomUUID } from 'node:crypto';
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type * as WsNamespace from 'ws';
import type { WebSocket, WebSocketServer, RawData } from 'ws';
import type { Metrics } from '../admin/metrics.js';
import { ProxyError, errorResponse } from '../errors.js';
import { backoffDelay, type DecorrelatedState } from '../policies/backoff.js';
import { BreakerOpenError } from '../policies/breaker.js';
import { AttemptError, classifyError, type FailureKind } from '../policies/outcome.js';
import { Exchange, type CompiledRoute } from './exchange.js';
import type { ProxyState } from './http.js';
import { resolveTarget, upstreamPathOf } from './router.js';
import { upgradeRequestHeaders } from './headers.js';
import { FakeUpgradeError, relayAnswer, tunnel } from './tunnel.js';

export const UPGRADE_OUTCOMES = ['accepted', 'rejected_breaker', 'rejected_overload', 'upstream_refused', 'handshake_timeout', 'upstream_error'] as const;
export type UpgradeOutcome = (typeof UPGRADE_OUTCOMES)[number];
export const CLOSE_REASONS = ['client', 'upstream', 'idle', 'lifetime', 'drain', 'error'] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

/** Pause the sending side once the receiving leg has this much queued. */
const HIGH_WATER = 1024 * 1024;
const PING_PAYLOAD = Buffer.from('outrigger');
// ws readyState values (RFC 6455 / WHATWG).
const OPEN = 1;
const CLOSED = 3;

// `ws` is loaded on the first upgrade: a proxy that never sees one saves its memory.
type WsModule = typeof WsNamespace;
let wsLib: WsModule | null = null;
let wsLoading: Promise<WsModule> | null = null;
function loadWs(): Promise<WsModule> {
  return (wsLoading ??= import('ws').then((m) => (wsLib = m)));
}

/** Handshake headers the ws client sets itself (hop-by-hop ones are already gone). */
const WS_SET_BY_CLIENT = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'content-length']);

interface Opened {
  status: 101;
  upstream: WebSocket;
  headers: IncomingMessage['headers'];
}
/** A 101 with both legs open, or another answer, relayed to the client as it is. */
type Handshake = Opened | { status: number; res: IncomingMessage };

class Connection {
  readonly started = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  lastActivity = Date.now();
  closed = false;
  private timers: NodeJS.Timeout[] = [];

  constructor(
    readonly owner: WebSocketProxy,
    readonly route: CompiledRoute,
    readonly client: WebSocket,
    readonly upstream: WebSocket,
    readonly requestId: string,
  ) {}

  start(): void {
    const ws = this.route.config.websocket;
    const { client, upstream } = this;
    this.relay(client, upstream, true);
    this.relay(upstream, client, false);
    client.on('close', (code, reason) => this.onClose('client', upstream, code, reason));
    upstream.on('close', (code, reason) => this.onClose('upstream', client, code, reason));
    client.on('error', () => this.end('error'));
    upstream.on('error', () => this.end('error'));
    if (ws.idleTimeout > 0) this.schedule(() => this.checkIdle(), ws.idleTimeout);
    if (ws.maxLifetime > 0) this.schedule(() => this.end('lifetime'), ws.maxLifetime);
    if (ws.ping > 0) {
      const t = setInterval(() => {
        if (upstream.readyState === OPEN) upstream.ping(PING_PAYLOAD);
      }, ws.ping);
      this.timers.push(t);
    }
  }

  /** Closes both legs with `code`, recording `reason`. */
  end(reason: CloseReason, code = 1001, text = ''): void {
    if (this.closed) return;
    this.finish(reason);
    for (const leg of [this.client, this.upstream]) {
      if (reason === 'error') leg.terminate();
      else if (leg.readyState === OPEN) leg.close(code, text);
      else leg.terminate();
      // A peer that never answers our close frame is cut after a short grace.
      const t = setTimeout(() => leg.terminate(), 2000);
      t.unref();
    }
  }

  private relay(from: WebSocket, to: WebSocket, fromClient: boolean): void {
    from.on('message', (data: RawData, isBinary: boolean) => {
      this.lastActivity = Date.now();
      const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
      if (fromClient) this.bytesIn += size;
      else this.bytesOut += size;
      if (to.readyState !== OPEN) return;
      to.send(data, { binary: isBinary }, () => {
        if (from.isPaused && to.bufferedAmount < HIGH_WATER / 2) from.resume();
      });
      if (to.bufferedAmount > HIGH_WATER) from.pause();
    });
    from.on('ping', (data: Buffer) => {
      this.lastActivity = Date.now();
      if (to.readyState === OPEN) to.ping(data);
    });
    from.on('pong', (data: Buffer) => {
      // Answers to the proxy's own keep-alive pings stop here, and are not traffic: they
      // must not keep an otherwise idle connection past its idleTimeout.
      if (!fromClient && data.equals(PING_PAYLOAD)) return;
      this.lastActivity = Date.now();
      if (to.readyState === OPEN) to.pong(data);
    });
  }

  private onClose(side: 'client' | 'upstream', other: WebSocket, code: number, reason: Buffer): void {
    if (this.closed) {
      return;
    }
    this.finish(side);
    if (other.readyState === OPEN) {
      // 1005/1006 mean "no code" and "abnormal"; they must not be sent on the wire.
      if (code === 1005 || code === 1006 || code < 1000 || code >= 5000 || code === 1015) other.close();
      else other.close(code, reason);
      const t = setTimeout(() => other.terminate(), 2000);
      t.unref();
    } else other.terminate();
  }

  private checkIdle(): void {
    const idle = this.route.config.websocket.idleTimeout;
    const quiet = Date.now() - this.lastActivity;
    if (quiet >= idle) this.end('idle');
    else this.schedule(() => this.checkIdle(), idle - quiet);
  }

  private schedule(fn: () => void, ms: number): void {
    const t = setTimeout(fn, ms);
    this.timers.push(t);
  }

  private finish(reason: CloseReason): void {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers = [];
    this.owner.closed(this, reason);
  }
}

export class WebSocketProxy {
  private readonly conns = new Set<Connection>();
  /** Open non-WebSocket tunnels, each by the function that cuts it. */
  private readonly tunnels = new Set<() => void>();
  private readonly perRoute = new Map<string, number>();
  /** What the upstream chose, for the client leg's 101 (read by the servers' hooks). */
  private readonly pending = new WeakMap<IncomingMessage, { protocol: string; extra: string[] }>();
  private wssPlain: WebSocketServer | null = null;
  private wssDeflate: WebSocketServer | null = null;

  constructor(
    private readonly state: ProxyState,
    private readonly metrics: Metrics,
  ) {}

  private server(lib: WsModule, deflate: boolean): WebSocketServer {
    const wss = new lib.WebSocketServer({
      noServer: true,
      autoPong: false,
      clientTracking: false,
      perMessageDeflate: deflate,
      // The client leg selects exactly the subprotocol the upstream chose, nothing else.
      handleProtocols: (_offered, req) => this.pending.get(req)?.protocol || false,
    });
    wss.on('headers', (headers: string[], req: IncomingMessage) => {
      for (const h of this.pending.get(req)?.extra ?? []) headers.push(h);
    });
    return wss;
  }

  get size(): number {
    return this.conns.size + this.tunnels.size;
  }

  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    if (wsLib === null) {
      loadWs().then(
        () => this.upgrade(req, socket, head),
        (err: unknown) => {
          this.state.log.error({ err }, 'cannot load ws');
          socket.destroy();
        },
      );
      return;
    }
    this.upgrade(req, socket, head);
  };

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const res = new ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    const rt = this.state.runtime;
    const method = req.method ?? 'GET';
    const requestId = (req.headers['x-request-id'] as string | undefined) || randomUUID();
    const target = resolveTarget(req, rt.config.http);
    const route = target instanceof ProxyError ? null : rt.router.match(method, target, req.headers);
    const sendError = (err: ProxyError, r: CompiledRoute | null, attempts = 0) => {
      const e = errorResponse(err, r?.name ?? null, attempts, requestId);
      res.writeHead(e.status, e.headers);
      res.end(e.body);
    };
    if (target instanceof ProxyError) return sendError(target, null);
    if (route === null) return sendError(new ProxyError('OUTRIGGER_NO_ROUTE', `no route matches ${method} ${target.host}${target.path}`), null);
    const token = String(req.headers.upgrade ?? '').trim().toLowerCase();
    if (!route.config.upgrades.includes(token)) {
      return sendError(new ProxyError('OUTRIGGER_BAD_REQUEST', `upgrade to ${JSON.stringify(token)} is not allowed on route ${route.name}`), route);
    }
    const m = this.metrics;
    const cap = route.config.websocket.maxConnections;
    if ((this.perRoute.get(route.name) ?? 0) >= cap) {
      if (token === 'websocket') m.wsUpgrades.labels(route.name, 'rejected_overload').inc();
      return sendError(new ProxyError('OUTRIGGER_OVERLOADED', `route ${route.name} has ${cap} upgraded connections, its websocket.maxConnections`), route);
    }
    // Count the handshake against the cap now, so a burst cannot overshoot it.
    this.perRoute.set(route.name, (this.perRoute.get(route.name) ?? 0) + 1);
    const ex = new Exchange(req, res, route, method, requestId, this.state);
    ex.deadline = ex.start + route.config.websocket.handshakeTimeout;
    const upstreamPath = upstreamPathOf(route, target);
    if (upstreamPath === null) {
      this.release(route);
      return sendError(new ProxyError('OUTRIGGER_BAD_REQUEST', "the request target climbs out of the route's rewritePrefix"), route);
    }
    ex.upstreamPath = upstreamPath;
    ex.path = target.path;
    ex.via = rt.config.http.via;
    ex.authority = target.authority;
    if (token !== 'websocket') {
      const started = Date.now();
      let cut: (() => void) | null = null;
      cut = tunnel(ex, token, socket, head, () => {
        if (cut !== null) this.tunnels.delete(cut);
        this.release(route);
        if (this.state.runtime.sampleAccess()) {
          this.state.log.info({ access: true, upgrade: token, route: route.name, durationMs: Date.now() - started, attempts: ex.attempts, requestId });
        }
      });
      this.tunnels.add(cut);
      return;
    }
    // Check the client's handshake before dialling the upstream: ws would refuse a bad one
    // itself, but only after the upstream connection was made.
    const key = req.headers['sec-websocket-key'];
    const version = req.headers['sec-websocket-version'];
    if (method !== 'GET' || typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key.trim()) || (version !== '13' && version !== '8')) {
      this.release(route);
      return sendError(new ProxyError('OUTRIGGER_BAD_REQUEST', 'not a valid WebSocket handshake (GET with Sec-WebSocket-Key and Sec-WebSocket-Version 13)'), route);
    }
    this.handshake(ex, target.authority).then(
      (h) => {
        if (h.status !== 101) {
          this.release(route);
          m.wsUpgrades.labels(route.name, 'upstream_refused').inc();
          relayAnswer(res, (h as { res: IncomingMessage }).res, ex.attempts, () => undefined);
          return;
        }
        this.accept(ex, h as Opened, socket, head);
      },
      (err: unknown) => {
        this.release(route);
        let pe: ProxyError;
        let outcome: UpgradeOutcome = 'upstream_error';
        // The client left during a backoff: nothing to count against the upstream, no one to answer.
        if (err instanceof AttemptError && err.kind === 'client-abort') return;
        if (err instanceof BreakerOpenError) {
          outcome = 'rejected_breaker';
          pe = new ProxyError('OUTRIGGER_BREAKER_OPEN', undefined, err.retryAfterSeconds);
        } else if (err instanceof AttemptError && err.kind === 'timeout') {
          outcome = 'handshake_timeout';
          pe = new ProxyError('OUTRIGGER_TIMEOUT', 'the upstream did not complete the WebSocket handshake in time');
        } else if (err instanceof AttemptError) {
          pe = new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE', `WebSocket handshake failed: ${err.cause instanceof Error ? err.cause.message : err.kind}`);
        } else pe = new ProxyError('OUTRIGGER_INTERNAL');
        m.wsUpgrades.labels(route.name, outcome).inc();
        if (res.writableEnded || socket.destroyed) return;
        const fallback = route.fallback?.replyForError(ex, pe);
        if (fallback) return fallback.send(ex);
        sendError(pe, route, ex.attempts);
      },
    );
  }

  /** Closes every connection (drain) with `code`; resolves when all are gone or after `graceMs`. */
  closeAll(code: number, text: string, graceMs = 2000): Promise<void> {
    // Raw tunnels have no close handshake: they are cut.
    for (const cut of [...this.tunnels]) cut();
    const legs: Array<Promise<void>> = [];
    for (const c of [...this.conns]) {
      for (const leg of [c.client, c.upstream]) {
        if (leg.readyState !== CLOSED) legs.push(new Promise((r) => leg.once('close', () => r())));
      }
      c.end('drain', code, text);
    }
    if (legs.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, graceMs);
      t.unref();
      void Promise.all(legs).then(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** @internal called by Connection */
  closed(c: Connection, reason: CloseReason): void {
    if (!this.conns.delete(c)) return;
    this.release(c.route);
    this.metrics.wsConnections.labels(c.route.name).dec();
    this.metrics.wsClosed.labels(c.route.name, reason).inc();
    const rt = this.state.runtime;
    if (rt.sampleAccess()) {
      this.state.log.info(
        { access: true, websocket: true, route: c.route.name, durationMs: Date.now() - c.started, bytesIn: c.bytesIn, bytesOut: c.bytesOut, reason, requestId: c.requestId },
        'websocket closed',
      );
    }
  }

  private release(route: CompiledRoute): void {
    const n = (this.perRoute.get(route.name) ?? 1) - 1;
    if (n <= 0) this.perRoute.delete(route.name);
    else this.perRoute.set(route.name, n);
  }

  /** Handshake attempts under the breaker, retried with backoff until the upstream answers. */
  private async handshake(ex: Exchange, authority: string): Promise<Handshake> {
    const route = ex.route;
    const retry = route.config.retry;
    let state: DecorrelatedState = undefined;
    for (let n = 0; ; n++) {
      if (ex.endpoint < 0) ex.endpoint = route.upstream.pick();
      else ex.endpoint = route.upstream.after(ex.endpoint);
      try {
        const once = () => this.attempt(ex, authority);
        return route.breaker ? await route.breaker.execute(once) : await once();
      } catch (err) {
        if (!(err instanceof AttemptError) || err instanceof FakeUpgradeError || err.kind === 'timeout' || n >= retry.attempts) throw err;
        if (err.kind !== 'connect-failure' && err.kind !== 'refused-stream' && err.kind !== 'reset') throw err;
        let delay: number;
        [delay, state] = backoffDelay(n + 1, retry.backoff, state);
        if (performance.now() + delay >= ex.deadline) throw err;
        if (!route.budget.tryAcquire()) {
          route.metrics.budgetExhausted.inc();
          throw err;
        }
        route.metrics.retry(err.kind === 'connect-failure' ? 'connect_failure' : 'reset');
        await new Promise((r) => setTimeout(r, delay));
        if (ex.req.socket.destroyed) throw new AttemptError('client-abort');
      }
    }
  }

  private attempt(ex: Exchange, authority: string): Promise<Handshake> {
    const route = ex.route;
    const endpoint = route.upstream.endpoints[ex.endpoint];
    ex.attempts++;
    return new Promise<Handshake>((resolve, reject) => {
      const left = Math.max(1, Math.floor(ex.remaining()));
      if (!endpoint) return reject(new AttemptError('connect-failure'));
      const req = ex.req;
      const headers = upgradeRequestHeaders(
        req.rawHeaders,
        { clientAddress: req.socket.remoteAddress ?? '', host: authority, requestId: ex.requestId, upstreamHost: route.config.preserveHost ? authority : null, via: ex.via },
        WS_SET_BY_CLIENT,
      );
      const protocols = String(req.headers['sec-websocket-protocol'] ?? '')
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean);
      const offersDeflate = String(req.headers['sec-websocket-extensions'] ?? '').includes('permessage-deflate');
      const url = `${endpoint.origin.replace(/^http/, 'ws')}${ex.upstreamPath}`;
      let opened = false;
      let answered = false;
      const upstream = new (wsLib as WsModule).WebSocket(url, protocols, {
        headers,
        handshakeTimeout: left,
        perMessageDeflate: offersDeflate,
        autoPong: false,
        followRedirects: false,
      });
      let upstreamHeaders: IncomingMessage['headers'] = {};
      upstream.once('upgrade', (r: IncomingMessage) => {
        answered = true;
        upstreamHeaders = r.headers;
      });
      upstream.once('unexpected-response', (_r, r: IncomingMessage) => {
        answered = true;
        resolve({ status: r.statusCode ?? 502, res: r });
      });
      upstream.once('open', () => {
        opened = true;
        resolve({ status: 101, upstream, headers: upstreamHeaders });
      });
      upstream.once('error', (err: Error & { code?: string }) => {
        if (opened) return;
        upstream.terminate();
        // ws checks the 101 itself (Upgrade header, Sec-WebSocket-Accept, subprotocol).
        if (answered) return reject(new FakeUpgradeError(err));
        // Before an answer, nothing reached a WebSocket server: connect-failure or reset.
        const kind: FailureKind = /handshake has timed out/i.test(err.message) ? 'timeout' : classifyError(err, true, true);
        reject(new AttemptError(kind, err));
      });
    });
  }

  private accept(ex: Exchange, h: Opened, socket: Duplex, head: Buffer): void {
    const route = ex.route;
    const req = ex.req;
    const upstream = h.upstream;
    if (socket.destroyed) {
      this.release(route);
      upstream.terminate();
      return;
    }
    const extra = [`x-outrigger-attempts: ${ex.attempts}`];
    for (const c of h.headers['set-cookie'] ?? []) extra.push(`set-cookie: ${c}`);
    this.pending.set(req, { protocol: upstream.protocol, extra });
    const lib = wsLib as WsModule;
    const wss = upstream.extensions.includes('permessage-deflate')
      ? (this.wssDeflate ??= this.server(lib, true))
      : (this.wssPlain ??= this.server(lib, false));
    let accepted = false;
    socket.once('close', () => {
      if (accepted) return;
      // ws refused the client's handshake (it answers 400 itself) or the client left first.
      this.pending.delete(req);
      this.release(route);
      upstream.terminate();
    });
    wss.handleUpgrade(req, socket, head, (client) => {
      accepted = true;
      this.pending.delete(req);
      this.metrics.wsUpgrades.labels(route.name, 'accepted').inc();
      this.metrics.wsConnections.labels(route.name).inc();
      const c = new Connection(this, route, client, upstream, ex.requestId);
      this.conns.add(c);
      c.start();
    });
  }
}
