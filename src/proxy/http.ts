// The proxy listener's request handler: route, build the Exchange, run the route's
// policy stack, then send what it produced. Also the one place that accounts for every
// request (metrics, access log) and turns errors into responses (via errors.ts).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProxyError, errorResponse, GRPC_STATUS_OF, isGrpcContentType, writeErrorResponse } from '../errors.js';
import type { AccessLogWriter, Logger } from '../log.js';
import type { Runtime } from '../runtime.js';
import type { RouteMetrics } from '../admin/metrics.js';
import { ClientGoneError, Exchange, type Handler, type Reply } from './exchange.js';
import { resolveTarget, upstreamPathOf } from './router.js';
import { AttemptError } from '../exchange/outcome.js';
import { constants as http2Constants, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import { isHttp2 } from './listener.js';

/** The 405 a CONNECT gets, here and on the listener's 'connect' event (app.ts). */
export const CONNECT_REFUSED = 'CONNECT tunnels are not supported by this proxy; send plain http:// requests (an HTTP_PROXY client), or upgrade a route with `upgrades:`';

export interface ProxyState {
  runtime: Runtime;
  draining: boolean;
  readonly log: Logger;
  /** Writes access-log lines (log.ts); callers ask Runtime.sampleAccess first. */
  readonly accessLog: AccessLogWriter;
  /** Requests whose response has not ended yet (for drain). */
  inflight: number;
  onIdle: (() => void) | null;
}

export function createProxyHandler(state: ProxyState): (req: IncomingMessage, res: ServerResponse) => void {
  return function handle(req, res) {
    const rt = state.runtime;
    const h2 = isHttp2(req);
    // `:authority` plays the role of Host (RFC 9113 8.3.1); a request with both keeps Host.
    if (h2 && req.headers.host === undefined) {
      const authority = req.headers[':authority'];
      if (typeof authority === 'string') req.headers.host = authority;
    }
    const method = req.method ?? 'GET';
    const requestId = requestIdOf(req);
    if (method === 'CONNECT') {
      return reject(state, rt.unmatched, req, res, method, new ProxyError('OUTRIGGER_METHOD_NOT_ALLOWED', CONNECT_REFUSED), requestId);
    }
    if (method === 'OPTIONS' && req.url === '*') return optionsStar(state, rt.unmatched, req, res, requestId);
    const ex = routeExchange(state, rt, req, res, method, requestId, false);
    if (ex === null) return;
    const route = ex.route;
    ex.grpc = isGrpcContentType(req.headers['content-type']);

    begin(state, rt, ex);
    res.once('close', () => finish(state, ex));
    if (ex.grpc) {
      if (route.upstream.settings.protocol === 'http1') {
        req.resume();
        return fail(state, ex, new ProxyError('OUTRIGGER_GRPC_UPSTREAM_HTTP1', `gRPC needs HTTP/2 to the upstream, and upstream "${route.upstream.name}" of route "${route.name}" has protocol http1`));
      }
      // The client's deadline caps the route's: min(timeout, grpc-timeout).
      const gt = parseGrpcTimeout(req.headers['grpc-timeout']);
      if (gt !== null) {
        ex.grpcDeadline = ex.start + gt;
        if (ex.deadline === 0 || ex.grpcDeadline < ex.deadline) ex.deadline = ex.grpcDeadline;
      }
    }

    const cl = req.headers['content-length'];
    // HTTP/2 frames the body itself: a stream not ended with its HEADERS has one, length or not.
    const chunked = req.headers['transfer-encoding'] !== undefined || (h2 && cl === undefined && !(req as unknown as Http2ServerRequest).stream.endAfterHeaders);
    if (!chunked && (cl === undefined || cl === '0')) {
      req.resume();
      return run(state, ex);
    }
    const len = cl === undefined ? -1 : Number(cl);
    const cfg = route.config;
    // Buffered so a retry can send it again, or so a dead letter can keep it (only a request
    // the retry rules would not repeat can become one).
    const mayDeadLetter = cfg.deadLetter.enabled && len <= cfg.deadLetter.maxBodyBytes && !cfg.retry.methods.includes(method) && req.headers[cfg.retry.idempotencyHeader] === undefined;
    const buffered = !chunked && len > 0 && ((len <= cfg.retry.bufferBody && cfg.retry.attempts > 0) || mayDeadLetter);
    watchUpload(state, ex, !buffered);
    if (buffered) {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.once('end', () => {
        ex.body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
        run(state, ex);
      });
      return;
    }
    ex.body = req;
    run(state, ex);
  };
}

/**
 * The upload and the route deadline on one timeline (README, Timeouts): `requestTimeout`
 * bounds receiving the request body, and the route `timeout` starts only once the whole
 * request has been received (Envoy's semantics), for buffered and streamed bodies alike.
 * Only requests with a body pay for these timers.
 */
function watchUpload(state: ProxyState, ex: Exchange, streamed: boolean): void {
  const cfg = ex.route.config;
  let upload: NodeJS.Timeout | null = null;
  let deadline: NodeJS.Timeout | null = null;
  ex.deadline = ex.grpcDeadline;
  if (cfg.requestTimeout > 0) {
    upload = setTimeout(() => {
      upload = null;
      if (ex.req.complete || ex.finished || ex.status !== 0) return;
      const err = new ProxyError('OUTRIGGER_REQUEST_TIMEOUT', `the request body was not received within requestTimeout (${cfg.requestTimeout}ms)`);
      // A streamed body is being sent by an attempt: cancelling it makes the stack fail with this error.
      if (streamed && ex.cancel !== null) ex.cancel(err);
      else fail(state, ex, err);
    }, cfg.requestTimeout);
  }
  ex.req.once('end', () => {
    if (upload !== null) clearTimeout(upload);
    upload = null;
    if (ex.finished || cfg.timeout <= 0) return;
    const routeDeadline = performance.now() + cfg.timeout;
    ex.deadline = ex.grpcDeadline !== 0 && ex.grpcDeadline < routeDeadline ? ex.grpcDeadline : routeDeadline;
    // A buffered body starts its attempts now, and they read the deadline. A streamed one
    // is already being sent by an attempt armed without it: this timer ends that wait.
    if (streamed) {
      deadline = setTimeout(() => {
        deadline = null;
        if (ex.finished || ex.status !== 0 || ex.cancel === null) return;
        ex.route.metrics.timeout('total');
        ex.cancel(new AttemptError('timeout', undefined, 'total'));
      }, Math.max(0, ex.deadline - performance.now()));
    }
  });
  ex.res.once('close', () => {
    if (upload !== null) clearTimeout(upload);
    if (deadline !== null) clearTimeout(deadline);
  });
}

/** The client's x-request-id, or a new one. */
export function requestIdOf(req: IncomingMessage): string {
  return firstValue(req.headers['x-request-id']) || randomUUID();
}

/**
 * The one routing step of every exchange, HTTP request or upgrade: the target resolved and
 * normalized, the route matched, the upstream path rewritten. A refusal is answered here
 * (counted as unmatched) and gives null; `closeAlways` closes the connection after any of
 * them (an upgrade's socket is not reused), else only after the ones that call for it.
 */
export function routeExchange(state: ProxyState, rt: Runtime, req: IncomingMessage, res: ServerResponse, method: string, requestId: string, closeAlways: boolean): Exchange | null {
  const target = resolveTarget(req, rt.config.http);
  if (target instanceof ProxyError) {
    reject(state, rt.unmatched, req, res, method, target, requestId, closeAlways || target.status !== 307);
    return null;
  }
  const route = rt.router.match(method, target, req.headers);
  if (route === null) {
    reject(state, rt.unmatched, req, res, method, new ProxyError('OUTRIGGER_NO_ROUTE', `no route matches ${method} ${target.host || '(no host)'}${target.path}`), requestId, closeAlways);
    return null;
  }
  const upstreamPath = upstreamPathOf(route, target);
  if (upstreamPath === null) {
    reject(state, rt.unmatched, req, res, method, new ProxyError('OUTRIGGER_BAD_REQUEST', "the request target climbs out of the route's rewritePrefix"), requestId, true);
    return null;
  }
  const ex = new Exchange(req, res, route, method, requestId, state);
  ex.upstreamPath = upstreamPath;
  ex.path = target.path;
  ex.via = rt.config.http.via;
  ex.authority = target.authority;
  return ex;
}

/** Counts an exchange as in flight (drain waits for it; its runtime's pools stay open). */
export function begin(state: ProxyState, rt: Runtime, ex: Exchange): void {
  state.inflight++;
  rt.acquire();
  ex.runtime = rt;
  ex.route.metrics.inflight++;
}

/** Runs the route's stack (HTTP, or the upgrade stack) and sends what it produced. */
export function run(state: ProxyState, ex: Exchange, handler: Handler = ex.route.handler): void {
  if (ex.finished) return;
  handler(ex).then(
    (reply: Reply) => {
      if (ex.finished || ex.clientGone) {
        reply.discard();
        return;
      }
      try {
        reply.send(ex);
      } catch (err) {
        // A throw while sending (say, an invalid upstream header value): log it, cut the response.
        state.log.error({ err, route: ex.route.name, requestId: ex.requestId }, 'failed to send the response');
        ex.route.metrics.internalError('failed to send the response');
        cutResponse(ex);
      }
    },
    (err: unknown) => fail(state, ex, err),
  );
}

/** The one place an error of the stack becomes the client's response. */
export function fail(state: ProxyState, ex: Exchange, err: unknown): void {
  if (ex.finished || ex.clientGone || err instanceof ClientGoneError) return;
  let pe: ProxyError;
  if (err instanceof ProxyError) pe = err;
  else {
    state.log.error({ err, route: ex.route.name, requestId: ex.requestId }, 'unexpected error in the policy stack');
    ex.route.metrics.internalError('unexpected error in the policy stack');
    pe = new ProxyError('OUTRIGGER_INTERNAL');
  }
  ex.errorCode = pe.code;
  const r = errorResponse(pe, ex.route.name, ex.attempts, ex.requestId, ex.grpc);
  if (ex.grpc) ex.grpcStatus = GRPC_STATUS_OF[pe.code];
  // After a 408 the rest of the body is still on the wire: the connection cannot be reused.
  if (ex.closeConnection || (pe.code === 'OUTRIGGER_REQUEST_TIMEOUT' && !isHttp2(ex.req))) r.headers.push('connection', 'close');
  if (ex.deadLetterId !== null) r.headers.push('x-outrigger-dead-letter', ex.deadLetterId);
  // Already answered (a 408 while the stack was still unwinding): nothing more to send.
  if (ex.res.writableEnded) return;
  ex.status = r.status;
  if (ex.res.headersSent) {
    cutResponse(ex);
    return;
  }
  writeErrorResponse(ex.res, r, ex.method);
}

/**
 * Accounts for an exchange once (metrics, access log, drain): when its response has closed,
 * or, for an upgrade, when the client has its 101 (`answered`). Not answered, and not cut
 * by us: the client left (499).
 */
export function finish(state: ProxyState, ex: Exchange, answered = answeredOf(ex)): void {
  if (!ex.markFinished()) return;
  const clientGone = !answered && !ex.truncated;
  const midBodyLoss = ex.truncated;
  if (!answered) {
    ex.clientGone = true;
    ex.cancel?.(new ClientGoneError());
  }
  const code = clientGone ? 499 : ex.status;
  const m = ex.route.metrics;
  m.request(ex.method, code);
  // A call the client cancelled reads as CANCELLED, whatever the upstream would have said.
  if (ex.grpc && clientGone) ex.grpcStatus = 1;
  if (ex.grpc && ex.grpcStatus !== null) m.grpcResponse(ex.grpcStatus);
  if (midBodyLoss) m.truncated.inc();
  const seconds = (performance.now() - ex.start) / 1000;
  m.observeDuration(seconds);
  m.inflight--;
  const rt = state.runtime;
  if (rt.sampleAccess()) {
    state.accessLog({
      route: ex.route.name,
      method: ex.method,
      path: ex.path,
      protocol: isHttp2(ex.req) ? 'h2c' : 'http/1.1',
      upgrade: ex.upgrade?.token,
      status: code,
      grpcStatus: ex.grpc ? (ex.grpcStatus ?? undefined) : undefined,
      attempts: ex.attempts,
      durationMs: Math.round(seconds * 1e6) / 1000,
      bytesOut: ex.bytesOut,
      fallback: ex.fallbackTrigger ?? undefined,
      error: ex.errorCode ?? (midBodyLoss ? 'response_truncated' : undefined),
      requestId: ex.requestId,
    });
  }
  ex.runtime?.release();
  state.inflight--;
  if (state.inflight === 0) state.onIdle?.();
}

/**
 * Whether the whole response went out. node:http2's compat response says writableFinished
 * also for a stream the client reset (RST_STREAM): there the stream's code tells.
 */
function answeredOf(ex: Exchange): boolean {
  if (!ex.res.writableFinished) return false;
  if (!isHttp2(ex.req)) return true;
  const stream = (ex.res as unknown as Http2ServerResponse).stream as { rstCode?: number } | undefined;
  return stream === undefined || stream.rstCode === undefined || stream.rstCode === 0;
}

/** Answers a request refused before it has a route (bad target, no route), counted as unmatched. */
export function reject(state: ProxyState, m: RouteMetrics, req: IncomingMessage, res: ServerResponse, method: string, err: ProxyError, requestId: string, close = false): void {
  const start = performance.now();
  const r = errorResponse(err, null, 0, requestId, isGrpcContentType(req.headers['content-type']));
  // A refused target (a limit, a smuggling-shaped request) closes the connection: what
  // follows on it cannot be trusted to be framed as the client meant.
  if ((state.draining || close) && !isHttp2(req)) r.headers.push('connection', 'close');
  req.resume();
  writeErrorResponse(res, r, method);
  m.request(method, r.status);
  m.observeDuration((performance.now() - start) / 1000);
  const rt = state.runtime;
  if (rt.sampleAccess()) {
    state.accessLog({ route: null, method, path: pathOf(req.url), protocol: isHttp2(req) ? 'h2c' : 'http/1.1', status: r.status, attempts: 0, error: err.code, requestId });
  }
}

/** grpc-timeout in ms (gRPC over HTTP/2: 1 to 8 digits and a unit), or null when absent or malformed. */
export function parseGrpcTimeout(v: string | string[] | undefined): number | null {
  if (typeof v !== 'string') return null;
  const m = /^(\d{1,8})([HMSmun])$/.exec(v);
  if (m === null) return null;
  const n = Number(m[1]);
  const unit = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }[m[2] as 'H' | 'M' | 'S' | 'm' | 'u' | 'n'];
  return n * unit;
}

/** The request path without its query (queries can carry tokens; logs never do). */
function pathOf(url: string | undefined): string {
  if (url === undefined) return '';
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function firstValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** `OPTIONS *` asks about the server itself (RFC 9110 9.3.7): answered here, never routed. */
function optionsStar(state: ProxyState, m: RouteMetrics, req: IncomingMessage, res: ServerResponse, requestId: string): void {
  req.resume();
  const headers = ['allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE', 'content-length', '0', 'x-request-id', requestId];
  if (state.draining && !isHttp2(req)) headers.push('connection', 'close');
  res.writeHead(200, headers);
  res.end();
  m.request('OPTIONS', 200);
}

/**
 * Cuts a response that has started, so the client cannot take it for complete: HTTP/1.1
 * loses the connection; an HTTP/2 stream is reset with INTERNAL_ERROR (a bare destroy()
 * would send RST_STREAM NO_ERROR, which a client reads as a clean end).
 */
function cutResponse(ex: Exchange): void {
  if (isHttp2(ex.req)) (ex.res as unknown as Http2ServerResponse).stream.close(http2Constants.NGHTTP2_INTERNAL_ERROR);
  else ex.res.destroy();
}
