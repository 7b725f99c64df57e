// WebSocket: the handshake attempt at the bottom of the route's policy stack, and the relay
// that runs once both legs are open.
//
// Why a message relay and not a raw socket pipe: the proxy must ping the upstream, close
// both sides with 1001 on drain, idle or lifetime, and bound what it buffers per connection
// (websocket.maxBufferedBytes, 1009 past it). Injecting frames into a byte pipe, or finding
// message boundaries in it, would need a frame parser of our own; `ws` owns framing on each
// leg, and close codes, pings and pongs are relayed explicitly. bench/RESULTS.md has the
// relay's cost next to a raw byte tunnel. Subprotocols pass through (the client leg selects
// exactly what the upstream chose); permessage-deflate is negotiated per leg, and only
// offered upstream when the client offered it.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type * as WsNamespace from 'ws';
import type { WebSocket, WebSocketServer, RawData } from 'ws';
import { AttemptError, InvalidUpgradeError, classifyError, type FailureKind } from '../exchange/outcome.js';
import { attemptBudget } from '../policies/timeout.js';
import type { CompiledRoute, Exchange, Reply } from './exchange.js';
import { upgradeRequestHeaders } from './headers.js';
import { AnswerReply, countHandshake } from './tunnel.js';

export const UPGRADE_OUTCOMES = ['accepted', 'rejected_breaker', 'rejected_overload', 'upstream_refused', 'handshake_timeout', 'upstream_error'] as const;
export type UpgradeOutcome = (typeof UPGRADE_OUTCOMES)[number];
export const CLOSE_REASONS = ['client', 'upstream', 'idle', 'lifetime', 'drain', 'error', 'buffer_overflow'] as const;
export type CloseReason = (typeof CLOSE_REASONS)[number];

const PING_PAYLOAD = Buffer.from('outrigger');
// ws readyState values (RFC 6455 / WHATWG).
const OPEN = 1;
const CLOSED = 3;

// `ws` is loaded on the first upgrade: a proxy that never sees one saves its memory.
type WsModule = typeof WsNamespace;
interface WsInternals {
  subprotocol: { parse(header: string): Set<string> };
  extension: { parse(header: string): Record<string, unknown[]> };
  PerMessageDeflate: new (opts: { isServer: boolean; maxPayload: number }) => { accept(offers: unknown[]): unknown };
}
let wsLib: WsModule | null = null;
let wsInternals: WsInternals | null = null;
let wsLoading: Promise<WsModule> | null = null;
export function loadWs(): Promise<WsModule> {
  return (wsLoading ??= import('ws').then((m) => {
    // ws's own header parsers, so a client handshake is judged before the upstream is dialled
    // exactly as ws would judge it after. They are not in ws's exports map: loaded by path.
    const req = createRequire(import.meta.url);
    const lib = join(dirname(req.resolve('ws/package.json')), 'lib');
    wsInternals = {
      subprotocol: req(join(lib, 'subprotocol.js')) as WsInternals['subprotocol'],
      extension: req(join(lib, 'extension.js')) as WsInternals['extension'],
      PerMessageDeflate: req(join(lib, 'permessage-deflate.js')) as WsInternals['PerMessageDeflate'],
    };
    return (wsLib = m);
  }));
}
export const wsLoaded = (): boolean => wsLib !== null;

/**
 * Why the client's handshake is not one `ws` would accept, or null. Checked before the
 * stack runs: a bad client handshake must never reach the upstream, nor its breaker.
 */
export function invalidClientHandshake(req: IncomingMessage, maxPayload: number): string | null {
  const key = req.headers['sec-websocket-key'];
  const version = req.headers['sec-websocket-version'];
  if (req.method !== 'GET') return 'a WebSocket handshake must be a GET';
  if (typeof key !== 'string' || !/^[+/0-9A-Za-z]{22}==$/.test(key.trim())) return 'missing or invalid Sec-WebSocket-Key';
  if (version !== '13' && version !== '8') return 'Sec-WebSocket-Version must be 13';
  const w = wsInternals as WsInternals;
  const protocols = req.headers['sec-websocket-protocol'];
  if (protocols !== undefined) {
    try {
      w.subprotocol.parse(protocols);
    } catch {
      return 'invalid Sec-WebSocket-Protocol (tokens, each at most once)';
    }
  }
  const extensions = req.headers['sec-websocket-extensions'];
  if (extensions !== undefined) {
    try {
      const offers = w.extension.parse(extensions);
      const deflate = offers['permessage-deflate'];
      if (deflate !== undefined) new w.PerMessageDeflate({ isServer: true, maxPayload }).accept(deflate);
    } catch {
      return 'invalid Sec-WebSocket-Extensions';
    }
  }
  return null;
}

/** Handshake headers the ws client sets itself (hop-by-hop ones are already gone). */
const WS_SET_BY_CLIENT = new Set(['sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol', 'content-length']);

/**
 * A ws:// URL whose path is exactly the one routed. ws re-parses a string address with
 * WHATWG rules (which resolve `..`, `%2e` and `\`), and would then connect to another path
 * than the route matched.
 */
function exactPathUrl(origin: string, path: string): URL {
  const url = new URL(origin.replace(/^http/, 'ws'));
  Object.defineProperties(url, { pathname: { get: () => path }, search: { get: () => '' } });
  return url;
}

/** What arrives on the upstream leg between its 101 and the relay: kept, in order. */
type Early = ['message', RawData, boolean] | ['ping' | 'pong', Buffer] | ['close', number, Buffer] | ['error', Error];

/** The upstream's 101: its leg is open and paused, with everything it sent since kept. */
class OpenedReply implements Reply {
  readonly status = 101;
  readonly retryAfter = null;
  private readonly early: Early[] = [];
  /** Listeners typed per event, stored as ws's untyped listener shape. */
  private readonly listeners: Array<[string, (...args: unknown[]) => void]> = [];

  constructor(
    readonly upstream: WebSocket,
    readonly headers: IncomingMessage['headers'],
    /** The subprotocol the upstream chose; '' when it chose none. */
    private readonly protocol: string,
  ) {
    // Frames can come in the same read as the 101 (greeting protocols: engine.io, graphql-ws,
    // STOMP). ws emits them on the next tick, before any promise continuation: catch them now.
    const keep = <A extends unknown[]>(e: string, f: (...args: A) => void) => {
      const g = f as unknown as (...args: unknown[]) => void;
      upstream.on(e, g);
      this.listeners.push([e, g]);
    };
    keep('message', (d: RawData, b: boolean) => this.early.push(['message', d, b]));
    keep('ping', (d: Buffer) => this.early.push(['ping', d]));
    keep('pong', (d: Buffer) => this.early.push(['pong', d]));
    keep('close', (c: number, r: Buffer) => this.early.push(['close', c, r]));
    keep('error', (e: Error) => this.early.push(['error', e]));
    upstream.pause();
  }

  send(ex: Exchange): void {
    const up = ex.upgrade;
    if (up === null) throw new Error('a WebSocket reply outside an upgrade exchange');
    const client = up.socket;
    if (client.destroyed) return this.discard();
    const route = ex.route;
    const extra = [`x-outrigger-attempts: ${ex.attempts}`];
    const cookies = this.headers['set-cookie'];
    if (cookies !== undefined) for (const c of cookies) extra.push(`set-cookie: ${c}`);
    pending.set(ex.req, { protocol: this.protocol, extra });
    const deflate = this.upstream.extensions.includes('permessage-deflate');
    let accepted = false;
    client.once('close', () => {
      if (accepted) return;
      // ws refused the client's handshake after all (it answers 400 itself), or the client left.
      pending.delete(ex.req);
      this.upstream.terminate();
    });
    serverFor(deflate, route.config.websocket.maxBufferedBytes).handleUpgrade(ex.req, client, up.head, (leg) => {
      accepted = true;
      pending.delete(ex.req);
      for (const [e, f] of this.listeners) this.upstream.off(e, f);
      const c = new Connection(ex, leg, this.upstream, this.early);
      ex.status = 101;
      up.switched();
      c.start(up.register((code, text) => c.end('drain', code, text)));
    });
  }

  discard(): void {
    for (const [e, f] of this.listeners) this.upstream.off(e, f);
    this.upstream.terminate();
  }
}

/** What the upstream chose, for the client leg's 101 (read by the servers' hooks). */
const pending = new WeakMap<IncomingMessage, { protocol: string; extra: string[] }>();
const servers = new Map<string, WebSocketServer>();

/** A `ws` server (noServer) per deflate setting and message limit; they hold no state of their own. */
function serverFor(deflate: boolean, maxPayload: number): WebSocketServer {
  const key = `${deflate ? 1 : 0}:${maxPayload}`;
  let wss = servers.get(key);
  if (wss === undefined) {
    wss = new (wsLib as WsModule).WebSocketServer({
      noServer: true,
      autoPong: false,
      clientTracking: false,
      perMessageDeflate: deflate,
      maxPayload,
      // The client leg selects exactly the subprotocol the upstream chose, nothing else.
      handleProtocols: (_offered, req) => pending.get(req)?.protocol || false,
    });
    wss.on('headers', (headers: string[], req: IncomingMessage) => {
      for (const h of pending.get(req)?.extra ?? []) headers.push(h);
    });
    servers.set(key, wss);
  }
  return wss;
}

/**
 * One WebSocket handshake with the upstream: a 101 (OpenedReply), another answer relayed as
 * HTTP (AnswerReply), or an AttemptError. Timed like an HTTP attempt: min(perTryTimeout,
 * time left in websocket.handshakeTimeout), and breaker.probeTimeout for a half-open probe.
 */
export function wsAttempt(ex: Exchange, endpointIndex: number, probe: boolean): Promise<Reply> {
  const route = ex.route;
  const cfg = route.config;
  const endpoint = route.upstream.endpoints[endpointIndex];
  return new Promise<Reply>((resolve, reject) => {
    let settled = false;
    let timer: NodeJS.Timeout | null = null;
    // Declared before settle(), which an early return calls before the socket exists.
    let cancel: ((err: Error) => void) | null = null;
    const settle = (r: Reply | null, err: Error | null): void => {
      if (settled) return;
      settled = true;
      if (timer !== null) clearTimeout(timer);
      if (cancel !== null && ex.cancel === cancel) ex.cancel = null;
      countHandshake(ex, r, err);
      if (err !== null) reject(err);
      else resolve(r as Reply);
    };
    if (endpoint === undefined) return settle(null, new AttemptError('connect-failure'));
    const { ms, kind, probeLimited } = attemptBudget(ex.remaining(), cfg.retry.perTryTimeout, probe ? cfg.breaker.probeTimeout : Infinity);
    if (ms <= 0) return settle(null, new AttemptError('timeout', undefined, 'total'));
    const req = ex.req;
    const headers = upgradeRequestHeaders(
      req.rawHeaders,
      { clientAddress: req.socket.remoteAddress ?? '', host: ex.authority, requestId: ex.requestId, upstreamHost: cfg.preserveHost ? ex.authority : null, via: ex.via },
      WS_SET_BY_CLIENT,
    );
    const offered = req.headers['sec-websocket-protocol'];
    const protocols = offered === undefined ? [] : [...(wsInternals as WsInternals).subprotocol.parse(offered)];
    const offersDeflate = String(req.headers['sec-websocket-extensions'] ?? '').includes('permessage-deflate');
    let answered = false;
    const upstream = new (wsLib as WsModule).WebSocket(exactPathUrl(endpoint.origin, ex.upstreamPath), protocols, {
      headers,
      perMessageDeflate: offersDeflate,
      autoPong: false,
      followRedirects: false,
      maxPayload: cfg.websocket.maxBufferedBytes,
    });
    cancel = (err: Error): void => {
      upstream.terminate();
      settle(null, err);
    };
    ex.cancel = cancel;
    if (ms !== Infinity) {
      timer = setTimeout(() => {
        timer = null;
        route.metrics.timeout(kind);
        upstream.terminate();
        settle(null, new AttemptError('timeout', undefined, kind, probeLimited));
      }, ms);
    }
    let upstreamHeaders: IncomingMessage['headers'] = {};
    let chosenNone = false;
    upstream.once('upgrade', (r: IncomingMessage) => {
      answered = true;
      upstreamHeaders = r.headers;
      // RFC 6455 4.2.2 lets a server choose none of the subprotocols offered; ws's client
      // would refuse that 101 ("Server sent no subprotocol"), which this proxy must relay.
      // ws runs its check right after this event: it is shown an offered one, and the
      // client leg is told the truth (no subprotocol).
      if (protocols.length > 0 && r.headers['sec-websocket-protocol'] === undefined) {
        chosenNone = true;
        r.headers['sec-websocket-protocol'] = protocols[0];
      }
    });
    upstream.once('unexpected-response', (clientReq, r: IncomingMessage) => {
      answered = true;
      const status = r.statusCode ?? 0;
      if (status < 200) {
        // A 101 without a valid Upgrade header reaches us as a plain response; so does any other 1xx.
        clientReq.destroy();
        r.socket?.destroy();
        return settle(null, new InvalidUpgradeError(status === 101 ? 'a 101 without Upgrade: websocket' : `an interim ${status} answer`));
      }
      // Node detaches a keep-alive socket from the response once it ends (there is no agent
      // to take it): hold it now, so the relay can close it.
      const sock = r.socket;
      settle(new AnswerReply(r, () => {
        clientReq.destroy();
        sock?.destroy();
      }), null);
    });
    upstream.once('open', () => {
      if (settled) return upstream.terminate();
      settle(new OpenedReply(upstream, upstreamHeaders, chosenNone ? '' : upstream.protocol), null);
    });
    upstream.on('error', (err: Error) => {
      if (settled) return;
      upstream.terminate();
      // ws checks the 101 itself (Upgrade header, Sec-WebSocket-Accept, subprotocol, extensions).
      if (answered) return settle(null, new InvalidUpgradeError(err.message));
      // Before an answer, nothing reached a WebSocket server: connect-failure or reset.
      const failure: FailureKind = classifyError(err, !/ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH/.test(String((err as { code?: string }).code)), true);
      settle(null, new AttemptError(failure, err));
    });
  });
}

/** Both legs of one accepted WebSocket, relayed message by message. */
class Connection {
  readonly started = Date.now();
  bytesIn = 0;
  bytesOut = 0;
  lastActivity = Date.now();
  closed = false;
  private timers: NodeJS.Timeout[] = [];
  private done: (reason: string, info: Record<string, unknown>) => void = () => undefined;
  private readonly route: CompiledRoute;
  private readonly limit: number;

  constructor(
    private readonly ex: Exchange,
    readonly client: WebSocket,
    readonly upstream: WebSocket,
    private readonly early: Early[],
  ) {
    this.route = ex.route;
    this.limit = ex.route.config.websocket.maxBufferedBytes;
  }

  start(done: (reason: string, info: Record<string, unknown>) => void): void {
    this.done = done;
    const ws = this.route.config.websocket;
    const { client, upstream } = this;
    this.relay(client, upstream, true);
    this.relay(upstream, client, false);
    client.on('close', (code, reason) => this.onClose('client', upstream, code, reason));
    upstream.on('close', (code, reason) => this.onClose('upstream', client, code, reason));
    client.on('error', (err) => this.onError(err));
    upstream.on('error', (err) => this.onError(err));
    if (ws.idleTimeout > 0) this.schedule(() => this.checkIdle(), ws.idleTimeout);
    if (ws.maxLifetime > 0) this.schedule(() => this.end('lifetime'), ws.maxLifetime);
    if (ws.ping > 0) {
      const t = setInterval(() => {
        if (upstream.readyState === OPEN) upstream.ping(PING_PAYLOAD);
      }, ws.ping);
      this.timers.push(t);
    }
    // What the upstream sent before the client leg existed goes first, in order.
    for (const e of this.early) {
      if (this.closed) break;
      if (e[0] === 'message') upstream.emit('message', e[1], e[2]);
      else if (e[0] === 'close') upstream.emit('close', e[1], e[2]);
      else if (e[0] === 'error') upstream.emit('error', e[1]);
      else upstream.emit(e[0], e[1]);
    }
    this.early.length = 0;
    if (!this.closed) upstream.resume();
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

  private onError(err: Error & { code?: string }): void {
    // A message over maxBufferedBytes (ws maxPayload): ws closes that leg with 1009; so do we the other.
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') this.end('buffer_overflow', 1009, 'message too big');
    else this.end('error');
  }

  private relay(from: WebSocket, to: WebSocket, fromClient: boolean): void {
    const limit = this.limit;
    // Pause the sender once the receiving leg has half the limit queued; what is already
    // read still arrives, so the hard limit sits above this mark.
    const high = limit / 2;
    from.on('message', (data: RawData, isBinary: boolean) => {
      if (this.closed) return;
      this.lastActivity = Date.now();
      const size = Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : (data as Buffer).byteLength;
      if (fromClient) this.bytesIn += size;
      else this.bytesOut += size;
      if (to.readyState !== OPEN) return;
      if (to.bufferedAmount > limit) {
        this.end('buffer_overflow', 1009, 'too much buffered');
        return;
      }
      to.send(data, { binary: isBinary }, () => {
        if (from.isPaused && to.bufferedAmount < high / 2) from.resume();
      });
      if (to.bufferedAmount > high) from.pause();
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
    if (this.closed) return;
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
    this.done(reason, { websocket: true, durationMs: Date.now() - this.started, bytesIn: this.bytesIn, bytesOut: this.bytesOut });
  }
}

/** Waits for both legs of every given socket to close, at most `graceMs`. */
export function legsClosed(legs: WebSocket[], graceMs: number): Promise<void> {
  const open = legs.filter((l) => l.readyState !== CLOSED);
  if (open.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(resolve, graceMs);
    t.unref();
    void Promise.all(open.map((l) => new Promise<void>((r) => l.once('close', () => r())))).then(() => {
      clearTimeout(t);
      resolve();
    });
  });
}

export type { Duplex };
