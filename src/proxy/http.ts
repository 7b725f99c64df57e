// The proxy listener's request handler: route, build the Exchange, run the route's
// policy stack, then send what it produced. Also the one place that accounts for every
// request (metrics, access log) and turns errors into responses (via errors.ts).
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ProxyError, errorResponse } from '../errors.js';
import type { Logger } from '../log.js';
import type { Runtime } from '../runtime.js';
import type { RouteMetrics } from '../admin/metrics.js';
import { ClientGoneError, Exchange, type Reply } from './exchange.js';
import { parseTarget } from './router.js';

export interface ProxyState {
  runtime: Runtime;
  draining: boolean;
  readonly log: Logger;
  /** Requests whose response has not ended yet (for drain). */
  inflight: number;
  onIdle: (() => void) | null;
}

export function createProxyHandler(state: ProxyState): (req: IncomingMessage, res: ServerResponse) => void {
  return function handle(req, res) {
    const rt = state.runtime;
    const method = req.method ?? 'GET';
    const target = parseTarget(req.url ?? '/', req.headers.host);
    const requestId = firstValue(req.headers['x-request-id']) || randomUUID();
    if (target === null || method === 'CONNECT') {
      const msg = method === 'CONNECT' ? 'CONNECT tunnels are not supported; send plain http:// requests' : 'the request target must be a path or an http:// URL';
      return reject(state, rt.unmatched, req, res, method, new ProxyError('OUTRIGGER_BAD_REQUEST', msg), requestId);
    }
    const route = rt.router.match(method, target, req.headers);
    if (route === null) {
      return reject(state, rt.unmatched, req, res, method, new ProxyError('OUTRIGGER_NO_ROUTE', `no route matches ${method} ${target.host || '(no host)'}${target.path}`), requestId);
    }

    const ex = new Exchange(req, res, route, method, requestId, state);
    let path = target.path;
    if (route.rewriteFrom !== null && route.rewriteTo !== null && path.startsWith(route.rewriteFrom)) {
      const rest = path.slice(route.rewriteFrom.length);
      path = route.rewriteTo.endsWith('/') && rest.startsWith('/') ? route.rewriteTo + rest.slice(1) : route.rewriteTo + rest;
      if (path === '') path = '/';
    }
    ex.upstreamPath = path + target.query;
    ex.authority = target.authority;

    state.inflight++;
    rt.acquire();
    ex.runtime = rt;
    route.metrics.inflight++;
    res.once('close', () => finish(state, ex));

    const cl = req.headers['content-length'];
    const chunked = req.headers['transfer-encoding'] !== undefined;
    if (!chunked && (cl === undefined || cl === '0')) {
      req.resume();
      return run(state, ex);
    }
    const len = cl === undefined ? -1 : Number(cl);
    if (!chunked && len > 0 && len <= route.config.retry.bufferBody && route.config.retry.attempts > 0) {
      // Small bodies are buffered so a retry can send them again.
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

function run(state: ProxyState, ex: Exchange): void {
  if (ex.finished) return;
  ex.route.handler(ex).then(
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
        ex.res.destroy();
      }
    },
    (err: unknown) => fail(state, ex, err),
  );
}

function fail(state: ProxyState, ex: Exchange, err: unknown): void {
  if (ex.finished || ex.clientGone || err instanceof ClientGoneError) return;
  let pe: ProxyError;
  if (err instanceof ProxyError) pe = err;
  else {
    state.log.error({ err, route: ex.route.name, requestId: ex.requestId }, 'unexpected error in the policy stack');
    pe = new ProxyError('OUTRIGGER_INTERNAL');
  }
  ex.errorCode = pe.code;
  const r = errorResponse(pe, ex.route.name, ex.attempts, ex.requestId);
  if (ex.closeConnection) r.headers.push('connection', 'close');
  ex.status = r.status;
  if (ex.res.headersSent) {
    ex.res.destroy();
    return;
  }
  ex.res.writeHead(r.status, r.headers);
  ex.res.end(ex.method === 'HEAD' ? undefined : r.body);
}

function finish(state: ProxyState, ex: Exchange): void {
  if (!ex.markFinished()) return;
  const res = ex.res;
  // 'close' before the response finished, and not because we cut it: the client left.
  const clientGone = !res.writableFinished && !ex.truncated;
  const midBodyLoss = ex.truncated;
  if (!res.writableFinished) {
    ex.clientGone = true;
    ex.cancel?.(new ClientGoneError());
  }
  const code = clientGone ? 499 : ex.status;
  const m = ex.route.metrics;
  m.request(ex.method, code);
  const seconds = (performance.now() - ex.start) / 1000;
  m.observeDuration(seconds);
  m.inflight--;
  const rt = state.runtime;
  if (rt.sampleAccess()) {
    state.log.info(
      {
        access: true,
        route: ex.route.name,
        method: ex.method,
        path: pathOf(ex.req.url),
        status: code,
        attempts: ex.attempts,
        durationMs: Math.round(seconds * 1e6) / 1000,
        bytesOut: ex.bytesOut,
        fallback: ex.fallbackTrigger ?? undefined,
        error: ex.errorCode ?? (midBodyLoss ? 'response_truncated' : undefined),
        requestId: ex.requestId,
      },
    );
  }
  ex.runtime?.release();
  state.inflight--;
  if (state.inflight === 0) state.onIdle?.();
}

function reject(state: ProxyState, m: RouteMetrics, req: IncomingMessage, res: ServerResponse, method: string, err: ProxyError, requestId: string): void {
  const start = performance.now();
  const r = errorResponse(err, null, 0, requestId);
  if (state.draining) r.headers.push('connection', 'close');
  req.resume();
  res.writeHead(r.status, r.headers);
  res.end(method === 'HEAD' ? undefined : r.body);
  m.request(method, r.status);
  m.observeDuration((performance.now() - start) / 1000);
  const rt = state.runtime;
  if (rt.sampleAccess()) {
    state.log.info({ access: true, route: null, method, path: pathOf(req.url), status: r.status, attempts: 0, error: err.code, requestId });
  }
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
