// One try against an HTTP/2 upstream (protocol h2c or h2) over a node:http2 session
// (h2-session.ts). The same contract as the undici Attempt: it settles at response headers
// with a transport-neutral Reply (status, Retry-After, the grpc-status of a trailers-only
// response), and send() streams the body to the client with backpressure, then the
// trailers; discard() cancels the stream. A client that leaves cancels the upstream stream
// (RST_STREAM CANCEL); an upstream reset after the head went out resets the client's
// stream, and one before gets the proxy's own error (a grpc-status for gRPC calls). The
// client's request trailers follow its body upstream, and bodyTimeout bounds each idle gap
// of the stream once the response streams (data either way counts, so a bidi call whose
// client talks stays up), as undici enforces it for http1.
import { constants, type ClientHttp2Stream, type Http2ServerResponse, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Readable } from 'node:stream';
import type { Exchange, Reply } from './exchange.js';
import type { BodyTap } from '../exchange/exchange.js';
import { upstreamRequestHeaders } from './headers.js';
import { ProxyError, errorResponse, writeErrorResponse } from '../errors.js';
import { attemptBudget } from '../policies/timeout.js';
import { AttemptError, attemptOutcomeOfStatus, type TimeoutKind } from '../exchange/outcome.js';
import { noteFailure } from './attempt.js';

const PENDING = 0;
const HEADERS = 1;
const STREAM = 2;
const DONE = 3;

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_INTERNAL_ERROR } = constants;

/** Connection-specific fields HTTP/2 forbids (RFC 9113 8.2.2), dropped from responses too. */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te']);
/** Fields a trailer section must not carry (RFC 9110 6.5.1: framing, routing, controls). */
const NOT_TRAILERS = new Set([...CONNECTION_SPECIFIC, 'content-length', 'content-type', 'host', 'trailer', 'authorization', 'cookie', 'set-cookie', 'expect', 'range', 'cache-control', 'max-forwards']);
const NO_TRAILERS: Record<string, string> = {};
const CONNECT_CODES = new Set(['ECONNREFUSED', 'UND_ERR_CONNECT_TIMEOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'ECONNRESET', 'ERR_SSL_WRONG_VERSION_NUMBER']);

/** grpc-timeout for `ms` milliseconds (gRPC over HTTP/2: at most 8 digits). */
function grpcTimeout(ms: number): string {
  const m = Math.max(1, Math.ceil(ms));
  return m < 1e8 ? `${m}m` : `${Math.ceil(m / 1000)}S`;
}

/** Response header pairs for the client: pseudo-headers and connection-specific fields removed. */
function responsePairs(h: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(h)) {
    if (k.charCodeAt(0) === 58 || CONNECTION_SPECIFIC.has(k) || v === undefined) continue;
    if (Array.isArray(v)) for (const x of v) out.push(k, x);
    else out.push(k, String(v));
  }
  return out;
}

/** The client's request trailers, as HTTP/2 may carry them upstream. */
function requestTrailers(t: Record<string, string | string[] | undefined> | undefined): Record<string, string> {
  if (t === undefined) return NO_TRAILERS;
  let out: Record<string, string> | null = null;
  for (const k in t) {
    const v = t[k];
    if (v === undefined || k.charCodeAt(0) === 58 || NOT_TRAILERS.has(k)) continue;
    (out ??= {})[k] = Array.isArray(v) ? v.join(', ') : v;
  }
  return out ?? NO_TRAILERS;
}

function trailerRecord(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(h)) if (v !== undefined && k.charCodeAt(0) !== 58) out[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return out;
}

function grpcStatusOf(h: IncomingHttpHeaders): number | null {
  const v = h['grpc-status'];
  if (typeof v !== 'string' || !/^\d{1,2}$/.test(v)) return null;
  return Number(v);
}

export class H2Attempt implements Reply {
  status = 0;
  /** The grpc-status of a trailers-only response (in the headers), else null. */
  grpcStatus: number | null = null;
  private head: string[] = [];
  private retry: string | null = null;
  private phase = PENDING;
  private stream: ClientHttp2Stream | null = null;
  private connected = false;
  private timer: NodeJS.Timeout | null = null;
  private timeoutKind: TimeoutKind = 'total';
  private probeLimited = false;
  private resolve: ((r: Reply) => void) | null = null;
  private reject: ((e: unknown) => void) | null = null;
  private error: Error | null = null;
  /** The response ended with its HEADERS frame (trailers-only for gRPC, or a bodiless answer). */
  private endedAtHead = false;
  private ended = false;
  private trailers: IncomingHttpHeaders | null = null;
  private headPending = false;
  /** A copy of the body goes here as it streams (the stale-if-error cache); null on most routes. */
  private tapSink: BodyTap | null = null;
  private tappedBytes = 0;
  /** bodyTimeout while the response streams: refreshed by data either way, off while the client holds us back. */
  private idleTimer: NodeJS.Timeout | null = null;
  private paused = false;

  get retryAfter(): string | null {
    return this.retry;
  }

  get responseHeaders(): readonly string[] {
    return this.head;
  }

  constructor(
    private readonly ex: Exchange,
    private readonly endpointIndex: number,
    private readonly probe: boolean,
  ) {}

  run(): Promise<Reply> {
    const ex = this.ex;
    const cfg = ex.route.config;
    return new Promise<Reply>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
      const { ms, kind, probeLimited } = attemptBudget(ex.remaining(), cfg.retry.perTryTimeout, this.probe ? cfg.breaker.probeTimeout : Infinity);
      this.probeLimited = probeLimited;
      this.timeoutKind = kind;
      if (ms <= 0) {
        this.fail(new AttemptError('timeout', undefined, 'total'));
        return;
      }
      if (ms !== Infinity) this.timer = setTimeout(this.onTimer, ms);
      ex.cancel = this.cancel;
      const endpoint = ex.route.upstream.endpoints[this.endpointIndex];
      if (endpoint === undefined || endpoint.h2 === null) {
        this.fail(new AttemptError('connect-failure'));
        return;
      }
      const body = ex.body;
      const empty = body === null || (Buffer.isBuffer(body) && body.length === 0);
      let opened;
      try {
        opened = endpoint.h2.request(this.requestHeaders(endpoint.origin, endpoint.authority, ms), empty, !empty);
      } catch (err) {
        this.fail(new AttemptError('connect-failure', err));
        return;
      }
      const { session, stream } = opened;
      this.stream = stream;
      this.connected = !session.connecting;
      if (!this.connected) session.once('connect', () => (this.connected = true));
      stream.once('response', this.onResponse);
      stream.on('trailers', (t: IncomingHttpHeaders) => (this.trailers = t));
      stream.on('error', (err: Error) => (this.error ??= err));
      stream.once('close', this.onClose);
      if (!empty) {
        // The request's trailers are known once its body ended, which is when node asks.
        stream.once('wantTrailers', () => {
          if (!stream.destroyed) stream.sendTrailers(requestTrailers(ex.req.trailers));
        });
        if (Buffer.isBuffer(body)) stream.end(body);
        else this.pipeBody(body as Readable, stream);
      }
    });
  }

  /** Streams the client's body; a gRPC call keeps a copy up to retry.bufferBody, so it can be retried once the client is done. */
  private pipeBody(body: Readable, stream: ClientHttp2Stream): void {
    const ex = this.ex;
    const limit = ex.route.config.retry.bufferBody;
    if (ex.grpc && ex.replay === undefined && ex.route.config.retry.attempts > 0) {
      const kept: Buffer[] = [];
      let bytes = 0;
      ex.replay = kept;
      const onData = (c: Buffer) => {
        bytes += c.length;
        if (bytes > limit) {
          ex.replay = null;
          body.off('data', onData);
        } else kept.push(c);
      };
      body.on('data', onData);
    }
    body.pipe(stream);
  }

  private requestHeaders(origin: string, authority: string, ms: number): OutgoingHttpHeaders {
    const ex = this.ex;
    const cfg = ex.route.config;
    const flat = (ex.upstreamHeaders ??= upstreamRequestHeaders(ex.req.rawHeaders, {
      clientAddress: ex.req.socket.remoteAddress ?? '',
      host: ex.authority,
      requestId: ex.requestId,
      upstreamHost: cfg.preserveHost ? ex.authority : null,
      via: ex.via,
    }));
    const h: OutgoingHttpHeaders = {
      ':method': ex.method,
      ':path': ex.upstreamPath,
      ':scheme': origin.startsWith('https:') ? 'https' : 'http',
      ':authority': authority,
    };
    const deadline = ex.grpc && ms !== Infinity;
    for (let i = 0; i < flat.length; i += 2) {
      const k = (flat[i] as string).toLowerCase();
      const v = flat[i + 1] as string;
      if (k === 'host') {
        h[':authority'] = v;
        continue;
      }
      if (CONNECTION_SPECIFIC.has(k) || (deadline && k === 'grpc-timeout')) continue;
      const prev = h[k];
      if (prev === undefined) h[k] = v;
      else if (k === 'cookie') h[k] = `${String(prev)}; ${v}`;
      else h[k] = Array.isArray(prev) ? [...prev, v] : [String(prev), v];
    }
    // gRPC needs `te: trailers` end to end; a client that asked for trailers keeps it too.
    const te = ex.req.headers.te;
    if (ex.grpc || (typeof te === 'string' && /(?:^|,)\s*trailers\s*(?:$|[,;])/i.test(te))) h.te = 'trailers';
    // Each attempt tells the server the time it has left.
    if (deadline) h['grpc-timeout'] = grpcTimeout(ms);
    return h;
  }

  private readonly onResponse = (headers: IncomingHttpHeaders, flags: number): void => {
    if (this.phase !== PENDING) return;
    this.clearTimer();
    this.ex.maybeSent = true;
    const stream = this.stream as ClientHttp2Stream;
    this.status = Number(headers[':status'] ?? 0);
    this.head = responsePairs(headers);
    const ra = headers['retry-after'];
    this.retry = typeof ra === 'string' ? ra : null;
    this.endedAtHead = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0 || stream.endAfterHeaders;
    if (this.endedAtHead) this.grpcStatus = grpcStatusOf(headers);
    this.phase = HEADERS;
    this.ex.route.metrics.attempt(attemptOutcomeOfStatus(this.status));
    const resolve = this.resolve;
    this.resolve = this.reject = null;
    resolve?.(this);
  };

  // --- Reply ------------------------------------------------------------------------

  send(ex: Exchange): void {
    this.head.push('x-outrigger-attempts', String(ex.attempts));
    if (ex.closeConnection) this.head.push('connection', 'close');
    ex.status = this.status;
    const stream = this.stream as ClientHttp2Stream;
    if (this.endedAtHead) {
      this.phase = DONE;
      ex.grpcStatus = this.grpcStatus;
      const res = ex.res;
      if (this.grpcStatus !== null) {
        // Trailers-only stays trailers-only: HEADERS with END_STREAM (http.ts writes no body).
        writeErrorResponse(res, { status: this.status, headers: this.head, body: Buffer.alloc(0), trailersOnly: true }, ex.method);
      } else {
        res.writeHead(this.status, this.head);
        res.end();
      }
      this.closeTap(true);
      stream.resume();
      return;
    }
    if (this.error !== null || stream.destroyed) {
      this.phase = DONE;
      this.closeTap(false);
      this.upstreamReset();
      return;
    }
    this.phase = STREAM;
    this.headPending = true;
    const idle = ex.route.config.bodyTimeout;
    if (idle > 0) {
      this.idleTimer = setTimeout(this.onIdle, idle);
      const body = ex.body;
      if (body !== null && !Buffer.isBuffer(body) && !(body as Readable).readableEnded) (body as Readable).on('data', this.touch);
    }
    stream.on('data', this.onData);
    stream.once('end', this.onEnd);
  }

  /**
   * Tees the body into `tap` as it streams. An HTTP/2 body's end is always explicit
   * (END_STREAM), so only a Content-Length it falls short of makes it a cut.
   */
  tap(tap: BodyTap): boolean {
    if (this.phase !== HEADERS || this.error !== null || this.tapSink !== null) return false;
    this.tapSink = tap;
    return true;
  }

  discard(): void {
    this.closeTap(false);
    if (this.phase !== HEADERS) return;
    this.phase = DONE;
    this.closeStream();
  }

  // --- internals --------------------------------------------------------------------

  private writeHead(): void {
    this.headPending = false;
    this.ex.res.writeHead(this.status, this.head);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.phase !== STREAM) return;
    if (this.headPending) this.writeHead();
    this.ex.bytesOut += chunk.length;
    const res = this.ex.res;
    const ok = res.write(chunk);
    if (this.tapSink !== null) {
      this.tappedBytes += chunk.length;
      this.tapSink.data(chunk);
    }
    if (!ok) {
      // A slow client is not an idle upstream: the body timer waits while we hold back.
      this.paused = true;
      this.clearIdle();
      (this.stream as ClientHttp2Stream).pause();
      res.once('drain', this.onDrain);
    } else this.idleTimer?.refresh();
  };

  private readonly onDrain = (): void => {
    this.paused = false;
    if (this.phase !== STREAM) return;
    const idle = this.ex.route.config.bodyTimeout;
    if (idle > 0) this.idleTimer = setTimeout(this.onIdle, idle);
    (this.stream as ClientHttp2Stream).resume();
  };

  /** Request-body data keeps a streaming exchange alive too. */
  private readonly touch = (): void => {
    if (!this.paused) this.idleTimer?.refresh();
  };

  /** No data either way for bodyTimeout while the response streamed: cut both sides, as for http1. */
  private readonly onIdle = (): void => {
    this.idleTimer = null;
    if (this.phase !== STREAM || this.paused) return;
    this.phase = DONE;
    this.stopStreaming();
    this.closeTap(false);
    this.ex.route.metrics.timeout('body');
    this.closeStream();
    if (this.headPending) {
      this.upstreamReset();
      return;
    }
    // INTERNAL_ERROR: a CANCEL reads as a clean end to some clients (node's among them).
    this.cutClient(NGHTTP2_INTERNAL_ERROR);
  };

  private readonly onEnd = (): void => {
    this.ended = true;
    if (this.phase !== STREAM) return;
    this.phase = DONE;
    this.stopStreaming();
    this.closeTap(true);
    if (this.headPending) this.writeHead();
    const res = this.ex.res;
    const t = this.trailers;
    if (t !== null) {
      const g = grpcStatusOf(t);
      if (g !== null) this.ex.grpcStatus = g;
      const rec = trailerRecord(t);
      // HTTP/2 clients always take trailers; HTTP/1.1 ones only on a chunked response.
      if (Object.keys(rec).length > 0 && (this.ex.req.httpVersionMajor === 2 || res.chunkedEncoding)) res.addTrailers(rec);
    }
    res.end();
  };

  private readonly onClose = (): void => {
    const stream = this.stream as ClientHttp2Stream;
    if (this.phase === PENDING) {
      this.clearTimer();
      const code = (this.error as { code?: string } | null)?.code;
      let kind: 'connect-failure' | 'refused-stream' | 'reset';
      if (!this.connected || (code !== undefined && CONNECT_CODES.has(code) && !this.connected)) kind = 'connect-failure';
      else if (stream.rstCode === NGHTTP2_REFUSED_STREAM || code === 'ERR_HTTP2_GOAWAY_SESSION') kind = 'refused-stream';
      else kind = 'reset';
      this.settleFailure(new AttemptError(kind, this.error ?? undefined));
      return;
    }
    if (this.phase === STREAM && !this.ended) {
      this.phase = DONE;
      this.stopStreaming();
      this.closeTap(false);
      if (this.headPending) {
        this.upstreamReset();
        return;
      }
      this.cutClient(stream.rstCode || NGHTTP2_INTERNAL_ERROR);
      return;
    }
    this.closeTap(false);
  };

  /** Cut mid-body: the client's response is reset too, never made to look complete. */
  private cutClient(code: number): void {
    this.ex.truncated = true;
    const res = this.ex.res;
    if (this.ex.req.httpVersionMajor === 2) (res as unknown as Http2ServerResponse).stream.close(code);
    else res.destroy();
  }

  private stopStreaming(): void {
    this.clearIdle();
    const body = this.ex.body;
    if (body !== null && !Buffer.isBuffer(body)) (body as Readable).off('data', this.touch);
  }

  private clearIdle(): void {
    if (this.idleTimer !== null) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
  }

  /** Ends the tap once: whole only if the stream ended and as long as Content-Length said. */
  private closeTap(complete: boolean): void {
    const tap = this.tapSink;
    if (tap === null) return;
    this.tapSink = null;
    const cl = this.headerValue('content-length');
    const bodiless = this.status === 204 || this.status === 304 || this.ex.method === 'HEAD';
    if (complete && (bodiless || cl === null || Number(cl) === this.tappedBytes)) tap.end();
    else tap.abort();
  }

  private headerValue(name: string): string | null {
    const h = this.head;
    for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1] as string;
    return null;
  }

  /** The upstream reset the stream before any byte reached the client: the proxy's own error. */
  private upstreamReset(): void {
    const ex = this.ex;
    const r = errorResponse(new ProxyError('OUTRIGGER_UPSTREAM_RESET'), ex.route.name, ex.attempts, ex.requestId, ex.grpc);
    if (ex.closeConnection) r.headers.push('connection', 'close');
    ex.status = r.status;
    ex.errorCode = 'OUTRIGGER_UPSTREAM_RESET';
    if (ex.grpc) ex.grpcStatus = 14;
    writeErrorResponse(ex.res, r, ex.method);
  }

  private closeStream(): void {
    const s = this.stream;
    if (s !== null && !s.closed && !s.destroyed) s.close(NGHTTP2_CANCEL);
  }

  /** The client went away, or the exchange gave up on this attempt: RST_STREAM CANCEL upstream. */
  private readonly cancel = (err: Error): void => {
    if (this.phase === STREAM || this.phase === HEADERS) {
      this.phase = DONE;
      this.stopStreaming();
      this.closeTap(false);
      this.closeStream();
      return;
    }
    if (this.phase !== PENDING) return;
    this.fail(err);
  };

  private readonly onTimer = (): void => {
    this.timer = null;
    if (this.phase !== PENDING) return;
    this.ex.route.metrics.timeout(this.timeoutKind);
    this.fail(new AttemptError('timeout', undefined, this.timeoutKind, this.probeLimited));
  };

  private fail(err: Error): void {
    this.clearTimer();
    this.settleFailure(err);
    this.closeStream();
  }

  private settleFailure(err: Error): void {
    if (this.phase === DONE) return;
    this.phase = DONE;
    noteFailure(this.ex, this.connected, err);
    const reject = this.reject;
    this.resolve = this.reject = null;
    reject?.(err);
  }

  private clearTimer(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
  }
}
