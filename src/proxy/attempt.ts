// One try against one endpoint: an undici dispatch handler (plain callbacks, no
// per-chunk promises) that settles at response headers, holds the body bytes that arrive
// meanwhile, and lets the policy layers decide whether to stream the body to the client
// or throw it away.
import type { Dispatcher } from 'undici';
import type { Exchange, Reply } from './exchange.js';
import type { BodyTap } from '../exchange/exchange.js';
import { ClientGoneError } from './exchange.js';
import { clientResponseHeaders, headerPairs, trailerObject, upstreamRequestHeaders, withoutTrailer, type ResponseHead } from './headers.js';
import { ProxyError, errorResponse } from '../errors.js';
import { attemptBudget } from '../policies/timeout.js';
import { AttemptError, attemptOutcomeOfFailure, attemptOutcomeOfStatus, classifyError, type TimeoutKind } from '../exchange/outcome.js';

const PENDING = 0;
const HEADERS = 1;
const STREAM = 2;
const DISCARD = 3;
const DONE = 4;

/**
 * undici errors that mean the request or the pool itself was refused (bad options, a
 * closed or destroyed pool): a bug of ours, not the upstream's. They are not retried and
 * not a breaker failure, and become OUTRIGGER_INTERNAL, logged (http.ts).
 */
const INTERNAL_CODES = new Set(['UND_ERR_INVALID_ARG', 'UND_ERR_NOT_SUPPORTED', 'UND_ERR_DESTROYED', 'UND_ERR_CLOSED', 'UND_ERR_INVALID_RETURN_VALUE', 'ERR_INVALID_ARG_TYPE', 'ERR_INVALID_ARG_VALUE']);

/** Whether a failure before any socket was the request's or the pool's own fault. */
export function isInternalDispatchError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? INTERNAL_CODES.has(code) : err instanceof TypeError || err instanceof RangeError;
}

/** A discarded response body up to this size is read off so the socket stays pooled. */
const DRAIN_LIMIT = 64 * 1024;

/**
 * Body bytes that arrive before the layers decide (send or discard) are held up to this
 * much; past it the upstream is paused until they do. Pausing undici's parser at the
 * headers instead would cost every response a parser pause, resume and re-read (about 3%
 * of a small request's CPU), while a small body is usually whole by the time they decide.
 */
const HOLD_LIMIT = 16 * 1024;

/**
 * What a failed attempt leaves on the exchange, for every transport: whether the request may
 * have reached the upstream (on a socket, and not a failure that provably never did), and
 * its outcome in outrigger_upstream_attempts_total.
 */
export function noteFailure(ex: Exchange, connected: boolean, err: Error): void {
  if (connected && !(err instanceof AttemptError && (err.kind === 'connect-failure' || err.kind === 'refused-stream'))) ex.maybeSent = true;
  if (err instanceof AttemptError) {
    const outcome = attemptOutcomeOfFailure(err.kind);
    if (outcome !== null) ex.route.metrics.attempt(outcome);
  }
}

export class Attempt implements Reply, Dispatcher.DispatchHandler {
  status = 0;
  head: ResponseHead | null = null;
  private phase = PENDING;
  private connected = false;
  private sent = false;
  private abortFn: ((err?: Error) => void) | null = null;
  private resumeFn: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private timeoutKind: TimeoutKind = 'total';
  /** This attempt is a half-open probe whose timer is breaker.probeTimeout. */
  private probeLimited = false;
  private resolve: ((r: Reply) => void) | null = null;
  private reject: ((e: unknown) => void) | null = null;
  private failure: Error | null = null;
  private lateError: Error | null = null;
  /** The whole response arrived in HEADERS, before send() or discard() (no body, or a held one). */
  private completeEarly = false;
  /** Trailers of a response that completed in HEADERS. */
  private trailers: Array<Buffer | string> | null = null;
  /** Body chunks received in HEADERS, written by send() (HOLD_LIMIT); null when none. */
  private held: Buffer[] | null = null;
  private heldBytes = 0;
  /**
   * In STREAM, the head is not written until the first body byte or the end: an upstream
   * that breaks off before either then gets a clean 502, not a client socket reset
   * before any status (the client could not tell that from a proxy crash).
   */
  private headPending = false;
  /** A copy of the body goes here as it streams (the stale-if-error cache); null on most routes. */
  private tapSink: BodyTap | null = null;
  private tappedBytes = 0;

  get retryAfter(): string | null {
    return this.head?.retryAfter ?? null;
  }

  get responseHeaders(): readonly string[] {
    return this.head?.headers ?? [];
  }

  constructor(
    private readonly ex: Exchange,
    private readonly endpointIndex: number,
    /** The half-open probe: its time is bounded by breaker.probeTimeout. */
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
      if (endpoint === undefined) {
        this.fail(new AttemptError('connect-failure'));
        return;
      }
      const body = ex.body;
      endpoint.pool.dispatch(
        {
          origin: endpoint.origin,
          path: ex.upstreamPath,
          method: ex.method as Dispatcher.HttpMethod,
          headers: (ex.upstreamHeaders ??= upstreamRequestHeaders(ex.req.rawHeaders, {
            clientAddress: ex.req.socket.remoteAddress ?? '',
            host: ex.authority,
            requestId: ex.requestId,
            upstreamHost: cfg.preserveHost ? ex.authority : null,
            via: ex.via,
          })),
          body,
          bodyTimeout: cfg.bodyTimeout,
          headersTimeout: 0,
        },
        this,
      );
    });
  }

  // --- undici handler -------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    // Abandoned while queued (per-try timeout, client gone, deadline): throwing here makes
    // undici drop the request from its queue unsent. Its abort() would instead destroy
    // the pooled socket and the body stream, which a retry may be sending.
    if (this.phase === DONE) throw this.failure ?? new ClientGoneError();
    this.abortFn = abort;
    this.connected = true;
  }

  onRequestSent(): void {
    this.sent = true;
  }

  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    this.ex.maybeSent = true;
    if (status < 200) {
      // 1xx is never a failure: 103 Early Hints is forwarded while this is the live attempt
      // (the client can act on it even if a retry answers), other 1xx are dropped.
      if (status === 103 && this.phase === PENDING) this.earlyHints(raw);
      return true;
    }
    if (this.phase !== PENDING) return false;
    this.clearTimer();
    this.status = status;
    this.head = clientResponseHeaders(raw);
    this.resumeFn = resume;
    this.phase = HEADERS;
    this.ex.route.metrics.attempt(attemptOutcomeOfStatus(status));
    const resolve = this.resolve;
    this.resolve = this.reject = null;
    resolve?.(this);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.phase === HEADERS) {
      (this.held ??= []).push(chunk);
      this.heldBytes += chunk.length;
      return this.heldBytes < HOLD_LIMIT; // false: paused until send() or discard()
    }
    if (this.phase !== STREAM) return true;
    const ok = this.write(chunk);
    if (!ok) this.ex.res.once('drain', this.onDrain);
    return ok;
  }

  /** undici's types say string[]; the legacy handler API passes raw Buffers. Both are read. */
  onComplete(trailers: Array<Buffer | string> | null): void {
    if (this.phase === STREAM) {
      if (this.headPending) this.writeHead();
      this.end(trailers);
      this.closeTap(true);
    } else if (this.phase === HEADERS) {
      // The whole response (its body held, or none) arrived before the layers decided:
      // send() must end the client response itself, or it would hang forever.
      this.completeEarly = true;
      this.trailers = trailers;
      return;
    }
    this.phase = DONE;
  }

  onError(err: Error): void {
    switch (this.phase) {
      case PENDING: {
        this.clearTimer();
        if (!this.connected && isInternalDispatchError(err)) {
          this.settleFailure(err);
          return;
        }
        const failure = err instanceof AttemptError ? err : new AttemptError(this.clientAborted() ? 'client-abort' : classifyError(err, this.connected, this.sent), err);
        this.settleFailure(failure);
        return;
      }
      case HEADERS:
        this.lateError = err;
        this.closeTap(false);
        return;
      case STREAM:
        this.phase = DONE;
        this.closeTap(false);
        if ((err as { code?: string }).code === 'UND_ERR_BODY_TIMEOUT') this.ex.route.metrics.timeout('body');
        if (this.headPending) {
          this.upstreamReset();
          return;
        }
        // An upstream that dies mid-body must not look like a complete response.
        this.ex.truncated = true;
        this.ex.res.destroy(err);
        return;
      default:
        this.phase = DONE;
        this.closeTap(false);
    }
  }

  // --- Reply ------------------------------------------------------------------------

  send(ex: Exchange): void {
    const head = this.head as ResponseHead;
    head.headers.push('x-outrigger-attempts', String(ex.attempts));
    if (ex.closeConnection) head.headers.push('connection', 'close');
    ex.status = this.status;
    const held = this.held;
    this.held = null;
    if (this.lateError) {
      this.phase = DONE;
      this.closeTap(false);
      this.upstreamReset();
      return;
    }
    if (this.completeEarly) {
      this.phase = DONE;
      this.writeHead();
      if (held !== null) for (const chunk of held) this.write(chunk);
      this.end(this.trailers);
      this.closeTap(true);
      return;
    }
    this.phase = STREAM;
    this.headPending = true;
    let ok = true;
    if (held !== null) for (const chunk of held) ok = this.write(chunk);
    if (!ok) this.ex.res.once('drain', this.onDrain);
    // Only paused if the held bytes reached HOLD_LIMIT; else a no-op.
    else this.resumeFn?.();
  }

  /**
   * Tees the body into `tap` as it streams. Refused for a body whose end cannot be told from
   * a cut (no Content-Length and not chunked: read until close, where undici takes even a
   * reset for the end), or once the reply has left the header phase.
   */
  tap(tap: BodyTap): boolean {
    if (this.phase !== HEADERS || this.lateError !== null || this.tapSink !== null) return false;
    const head = this.head as ResponseHead;
    if (!this.bodiless() && head.contentLength < 0 && !head.chunked) return false;
    this.tapSink = tap;
    return true;
  }

  discard(): void {
    this.closeTap(false);
    if (this.phase !== HEADERS) return;
    this.held = null;
    if (this.completeEarly) {
      this.phase = DONE;
      return;
    }
    const len = (this.head as ResponseHead).contentLength;
    if (!this.lateError && len >= 0 && len <= DRAIN_LIMIT) {
      this.phase = DISCARD;
      this.resumeFn?.();
    } else {
      this.phase = DONE;
      this.abortFn?.(new Error('response discarded'));
    }
  }

  // --- internals --------------------------------------------------------------------

  /** No body by the rules of HTTP, whatever Content-Length says. */
  private bodiless(): boolean {
    return this.status === 204 || this.status === 304 || this.ex.method === 'HEAD';
  }

  /** Ends the tap once: whole only if complete and as long as Content-Length said. */
  private closeTap(complete: boolean): void {
    const tap = this.tapSink;
    if (tap === null) return;
    this.tapSink = null;
    const len = (this.head as ResponseHead).contentLength;
    if (complete && (this.bodiless() || len < 0 || this.tappedBytes === len)) tap.end();
    else tap.abort();
  }

  /** Writes a body chunk to the client (the head first, if not yet sent), and to the tap. */
  private write(chunk: Buffer): boolean {
    if (this.headPending) this.writeHead();
    this.ex.bytesOut += chunk.length;
    const ok = this.ex.res.write(chunk);
    if (this.tapSink !== null) {
      this.tappedBytes += chunk.length;
      this.tapSink.data(chunk);
    }
    return ok;
  }

  private writeHead(): void {
    this.headPending = false;
    const head = this.head as ResponseHead;
    const ex = this.ex;
    // Node refuses a Trailer header on a response that cannot carry trailers.
    const noBody = this.bodiless();
    const headers = head.trailer && (noBody || head.contentLength >= 0 || ex.req.httpVersionMinor === 0) ? withoutTrailer(head.headers) : head.headers;
    ex.res.writeHead(this.status, headers);
  }

  /** Ends the client response, with the upstream's trailers (sent only on a chunked response). */
  private end(trailers: Array<Buffer | string> | null): void {
    const res = this.ex.res;
    // HTTP/2 clients always take trailers; HTTP/1.1 ones only on a chunked response.
    if (trailers !== null && trailers.length > 0) {
      if (res.chunkedEncoding) res.addTrailers(headerPairs(trailers));
      // The HTTP/2 compat response takes an object only.
      else if (this.ex.req.httpVersionMajor === 2) res.addTrailers(trailerObject(headerPairs(trailers)));
    }
    res.end();
  }

  /** The upstream broke off before any byte of the response reached the client: a clean 502. */
  private upstreamReset(): void {
    const ex = this.ex;
    const r = errorResponse(new ProxyError('OUTRIGGER_UPSTREAM_RESET'), ex.route.name, ex.attempts, ex.requestId);
    // The upstream connection is gone; ours may be reused as the response is complete.
    if (ex.closeConnection) r.headers.push('connection', 'close');
    ex.status = r.status;
    ex.errorCode = 'OUTRIGGER_UPSTREAM_RESET';
    ex.res.writeHead(r.status, r.headers);
    ex.res.end(ex.method === 'HEAD' ? undefined : r.body);
  }

  private earlyHints(raw: Buffer[]): void {
    const res = this.ex.res;
    if (res.headersSent || this.ex.clientGone) return;
    const hints: Record<string, string | string[]> = {};
    for (const [name, value] of headerPairs(raw)) {
      const k = name.toLowerCase();
      const prev = hints[k];
      hints[k] = prev === undefined ? value : Array.isArray(prev) ? [...prev, value] : [prev, value];
    }
    // Node sends a 103 only with a Link; a hint it cannot validate is dropped, not fatal.
    if (hints.link === undefined) return;
    try {
      res.writeEarlyHints(hints);
    } catch {
      /* invalid hint values: the final response still follows */
    }
  }

  /**
   * The client broke off its own upload (a streamed body that never completed): the attempt
   * failed because of the client, which is no verdict on the upstream (a half-open probe
   * stays half-open) and no attempt outcome.
   */
  private clientAborted(): boolean {
    const body = this.ex.body;
    if (this.sent || body === null || Buffer.isBuffer(body)) return false;
    const req = this.ex.req;
    return !req.complete && (this.ex.clientGone || req.destroyed || req.readableAborted);
  }

  /** The client went away, or the exchange gave up on this attempt. */
  private readonly cancel = (err: Error): void => {
    if (this.phase === STREAM || this.phase === HEADERS) {
      this.phase = DONE;
      this.closeTap(false);
      this.abortFn?.(err);
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

  private readonly onDrain = (): void => {
    if (this.phase === STREAM) this.resumeFn?.();
  };

  private fail(err: Error): void {
    this.clearTimer();
    this.failure = err;
    this.settleFailure(err);
    this.abortFn?.(err);
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
