// Upgrade requests (WebSocket, and the other protocols a route lists in `upgrades`). Routed
// like any request (the same target resolution and normalized path), then run through the
// route's policy stack with the handshake as the attempt at the bottom, and answered by the
// same writer as HTTP (http.ts): fallback, concurrency, retry, breaker, deadline, metrics
// and the access log are the HTTP path's own code. What differs lives here: the checks a
// handshake needs before it may reach the upstream, and the tracker of upgraded connections
// (websocket.maxConnections, drain, shutdown).
import { ServerResponse, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { ProxyError } from '../errors.js';
import type { RouteMetrics } from '../admin/metrics.js';
import type { CompiledRoute, Exchange, Reply } from './exchange.js';
import { begin, fail, finish, requestIdOf, routeExchange, run, type ProxyState } from './http.js';
import { invalidClientHandshake, loadWs, wsAttempt, wsLoaded, type UpgradeOutcome } from './websocket.js';
import { tunnelAttempt } from './tunnel.js';

/** The attempt at the bottom of a route's upgrade stack: the handshake for the token asked. */
export function upgradeAttempt(ex: Exchange, endpoint: number, probe: boolean): Promise<Reply> {
  return ex.upgrade?.token === 'websocket' ? wsAttempt(ex, endpoint, probe) : tunnelAttempt(ex, endpoint, probe);
}

/** Whether the listener should treat a request with an Upgrade header as an upgrade at all. */
export function isUpgrade(req: IncomingMessage): boolean {
  // h2c is HTTP/2 cleartext; a proxy may ignore the offer (RFC 9110 7.8) and serve the
  // request as plain HTTP/1.1, body included, which Node does when this returns false.
  return String(req.headers.upgrade ?? '').trim().toLowerCase() !== 'h2c';
}

interface Live {
  route: CompiledRoute;
  cut: (code: number, text: string) => void;
  closed: Promise<void>;
}

/** Handshakes in progress and upgraded connections, per route; closes them all on drain. */
export class UpgradeTracker {
  private readonly live = new Set<Live>();
  /** Client sockets whose handshake is still in the stack. */
  private readonly handshaking = new Set<Duplex>();
  /** Handshakes plus connections per route, against websocket.maxConnections. */
  private readonly perRoute = new Map<string, number>();
  private closingAll = false;

  constructor(private readonly state: ProxyState) {}

  get size(): number {
    return this.live.size;
  }

  readonly handleUpgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    socket.on('error', () => socket.destroy());
    if (!wsLoaded()) {
      loadWs().then(
        () => this.guarded(req, socket, head),
        (err: unknown) => {
          this.state.log.error({ err }, 'cannot load ws');
          socket.destroy();
        },
      );
      return;
    }
    this.guarded(req, socket, head);
  };

  /** The owner of everything an upgrade does synchronously: a throw is logged, counted, and answered. */
  private guarded(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    try {
      this.upgrade(req, socket, head);
    } catch (err) {
      const rt = this.state.runtime;
      this.state.log.error({ err, requestId: req.headers['x-request-id'] }, 'unexpected error handling an upgrade');
      rt.unmatched.internalError('unexpected error handling an upgrade');
      if (!socket.destroyed && socket.writable) socket.end('HTTP/1.1 500 Internal Server Error\r\nconnection: close\r\ncontent-length: 0\r\nx-outrigger-error: OUTRIGGER_INTERNAL\r\n\r\n');
      else socket.destroy();
    }
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const state = this.state;
    const res = new ServerResponse(req);
    res.assignSocket(socket as Socket);
    res.shouldKeepAlive = false;
    res.once('finish', () => socket.end());
    const rt = state.runtime;
    const method = req.method ?? 'GET';
    const requestId = requestIdOf(req);
    const token = String(req.headers.upgrade ?? '').trim().toLowerCase();
    const ex = routeExchange(state, rt, req, res, method, requestId, true);
    if (ex === null) return;
    const route = ex.route;
    ex.deadline = ex.start + route.config.websocket.handshakeTimeout;
    const m = route.metrics;
    let slot = false;
    let switched = false;
    const done = (): void => {
      if (ex.finished) return;
      this.handshaking.delete(socket);
      if (slot && !switched) this.release(route);
      finish(state, ex, switched || res.writableFinished);
      // Counted once the handshake was the proxy's to judge: not a client that left, nor a bad client handshake.
      if (token === 'websocket' && ex.status !== 0 && ex.errorCode !== 'OUTRIGGER_BAD_REQUEST') m.wsUpgrade(outcomeOf(ex));
    };
    ex.upgrade = {
      token,
      socket,
      head,
      register: (cut) => this.add(route, token, cut),
      switched: () => {
        switched = true;
        done();
      },
    };
    // A handshake in progress is in flight: a drain waits for it.
    begin(state, rt, ex);
    this.handshaking.add(socket);
    res.once('finish', done);
    socket.once('close', done);

    // Refusals before the stack: answered by the same writer, never reaching the upstream or its breaker.
    if (state.draining || this.closingAll) return refuse(state, ex, new ProxyError('OUTRIGGER_DRAINING'));
    if (!route.config.upgrades.includes(token)) {
      return refuse(state, ex, new ProxyError('OUTRIGGER_BAD_REQUEST', `upgrade to ${JSON.stringify(token)} is not allowed on route ${route.name}`));
    }
    if (token === 'websocket') {
      const bad = invalidClientHandshake(req, route.config.websocket.maxBufferedBytes);
      if (bad !== null) return refuse(state, ex, new ProxyError('OUTRIGGER_BAD_REQUEST', `not a valid WebSocket handshake: ${bad}`));
    }
    const cap = route.config.websocket.maxConnections;
    if ((this.perRoute.get(route.name) ?? 0) >= cap) {
      m.overload.inc();
      return refuse(state, ex, new ProxyError('OUTRIGGER_OVERLOADED', `route ${route.name} has ${cap} upgraded connections, its websocket.maxConnections`));
    }
    // Counted against the cap from now, so a burst of handshakes cannot overshoot it.
    this.perRoute.set(route.name, (this.perRoute.get(route.name) ?? 0) + 1);
    slot = true;
    run(state, ex, route.upgradeHandler);
  }

  private add(route: CompiledRoute, token: string, cut: (code: number, text: string) => void): (reason: string, info: Record<string, unknown>) => void {
    let resolveClosed: () => void = () => undefined;
    const entry: Live = { route, cut, closed: new Promise<void>((r) => (resolveClosed = r)) };
    this.live.add(entry);
    const m: RouteMetrics = route.metrics;
    if (token === 'websocket') m.wsOpened();
    // Accepted after a drain or shutdown closed the rest: it closes too (1001 for WebSocket).
    if (this.closingAll) queueMicrotask(() => cut(1001, 'proxy draining'));
    let ended = false;
    return (reason, info) => {
      if (ended) return;
      ended = true;
      this.live.delete(entry);
      this.release(route);
      if (token === 'websocket') m.wsClosed(reason);
      resolveClosed();
      const rt = this.state.runtime;
      if (rt.sampleAccess()) this.state.log.info({ access: true, route: route.name, upgrade: token, reason, ...info }, `${token} closed`);
    };
  }

  /**
   * Closes every upgraded connection (WebSocket with `code`; raw tunnels are cut) and fails
   * the handshakes still in progress; resolves when all are gone, or after `graceMs`.
   * Connections accepted later close at once.
   */
  closeAll(code: number, text: string, graceMs = 2000): Promise<void> {
    this.closingAll = true;
    for (const s of [...this.handshaking]) s.destroy();
    const closed: Array<Promise<void>> = [];
    for (const c of [...this.live]) {
      closed.push(c.closed);
      c.cut(code, text);
    }
    if (closed.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(resolve, graceMs);
      t.unref();
      void Promise.all(closed).then(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private release(route: CompiledRoute): void {
    const n = (this.perRoute.get(route.name) ?? 1) - 1;
    if (n <= 0) this.perRoute.delete(route.name);
    else this.perRoute.set(route.name, n);
  }
}

/** An upgrade refused before its stack ran: the HTTP writer answers, with `connection: close`. */
function refuse(state: ProxyState, ex: Exchange, err: ProxyError): void {
  ex.req.resume();
  fail(state, ex, err);
}

/** outrigger_websocket_upgrades_total{outcome} of a finished handshake. */
function outcomeOf(ex: Exchange): UpgradeOutcome {
  if (ex.status === 101) return 'accepted';
  switch (ex.fallbackTrigger ?? ex.errorCode) {
    case 'breaker-open':
    case 'OUTRIGGER_BREAKER_OPEN':
      return 'rejected_breaker';
    case 'overloaded':
    case 'OUTRIGGER_OVERLOADED':
    case 'OUTRIGGER_DRAINING':
      return 'rejected_overload';
    case 'timeout':
    case 'OUTRIGGER_TIMEOUT':
      return 'handshake_timeout';
    case null:
      // A relayed answer of the upstream's own (403, 426, 503, ...).
      return 'upstream_refused';
    default:
      return 'upstream_error';
  }
}
