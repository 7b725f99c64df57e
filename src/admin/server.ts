// The admin listener (probes, health, breaker actions, config) and the metrics listener.
// Health never fails because of breakers: a probe that cascaded open breakers into pod
// restarts would turn a degraded upstream into an outage.
import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from './metrics.js';
import type { StateRegistry } from './registry.js';
import type { BreakerSnapshot } from '../policies/breaker.js';
import { parseSeverity, type Operations } from './ops.js';
import { serveStatusPage } from './status-page.js';
import { handleDeadLetters, type ReplayFn } from './dead-letters.js';
import { CHUNK_BYTES } from './exposition.js';

/** A /metrics text up to one rendering chunk is sent whole, with a Content-Length. */
const HELD_METRICS_BYTES = CHUNK_BYTES;

export interface AdminState {
  /** The running proxy, as a registry the admin endpoints read. */
  proxy: StateRegistry;
  ready: boolean;
  token: string | undefined;
  lastReloadError: { at: string; problems: string[] } | null;
  /** Re-reads the config file; resolves with the problems (empty on success). */
  reload: () => Promise<string[]>;
  /** Operator views (/stats, /events, the status page, health levels, flapping). */
  ops?: Operations;
  /** Sends a dead letter through its route's policy stack again (app.ts). */
  replayDeadLetter?: ReplayFn;
  /** For outrigger_dead_letters_replayed_total. */
  metrics?: Metrics;
}

function json(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(body, null, 2) + '\n');
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(buf.length), 'cache-control': 'no-store', ...extra });
  res.end(buf);
}

function isLoopback(addr: string | undefined): boolean {
  if (!addr) return false;
  return addr === '::1' || addr.startsWith('127.') || addr.startsWith('::ffff:127.');
}

/** Mutations need the bearer token; with none configured, only loopback callers. */
function authorized(req: IncomingMessage, token: string | undefined): boolean {
  if (!token) return isLoopback(req.socket.remoteAddress);
  const h = req.headers.authorization ?? '';
  const m = /^Bearer\s+(.+)$/i.exec(h);
  if (!m) return false;
  const given = Buffer.from((m[1] as string).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

function unauthorized(res: ServerResponse, token: string | undefined): void {
  const msg = token ? 'a valid Authorization: Bearer token is required' : 'without OUTRIGGER_ADMIN_TOKEN, mutations are accepted only from loopback';
  json(res, token ? 401 : 403, { error: { code: 'UNAUTHORIZED', message: msg } }, token ? { 'www-authenticate': 'Bearer' } : {});
}

export function breakerList(state: AdminState): BreakerSnapshot[] {
  return [...state.proxy.runtime.breakers.values()].map((k) => k.value.snapshot());
}

export function healthDocument(state: AdminState): unknown {
  const rt = state.proxy.runtime;
  const breakers = breakerList(state);
  const critical = new Set(rt.routes.filter((r) => r.config.critical && r.breaker).map((r) => r.breaker?.name));
  return {
    status: breakers.some((b) => b.state !== 'closed') ? 'degraded' : 'healthy',
    breakers,
    criticalOpen: breakers.filter((b) => b.state !== 'closed' && critical.has(b.name)).map((b) => b.name),
    config: {
      path: rt.loaded.path,
      hash: rt.loaded.hash,
      loadedAt: rt.loaded.loadedAt.toISOString(),
      ...(state.lastReloadError ? { lastReloadError: state.lastReloadError } : {}),
    },
    draining: state.proxy.draining,
    ...(state.ops ? state.ops.health() : {}),
  };
}

function eventsDocument(state: AdminState, res: ServerResponse, query: string): void {
  const q = new URLSearchParams(query);
  const severity = parseSeverity(q.get('severity'));
  if (severity === undefined) return json(res, 400, { error: { code: 'BAD_REQUEST', message: 'severity must be one of info, warning, error, critical' } });
  const rawSince = q.get('since');
  let since: number | null = null;
  if (rawSince !== null && rawSince !== '') {
    since = /^\d+$/.test(rawSince) ? Number(rawSince) : Date.parse(rawSince);
    if (!Number.isFinite(since)) return json(res, 400, { error: { code: 'BAD_REQUEST', message: 'since must be an ISO 8601 time or milliseconds since the epoch' } });
  }
  const events = state.ops ? state.ops.events.query(since, severity) : [];
  return json(res, 200, { events });
}

export function createAdminHandler(state: AdminState): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    const [path, query = ''] = (req.url ?? '/').split('?') as [string, string?];
    const method = req.method ?? 'GET';
    if (path === '/dead-letters' || path.startsWith('/dead-letters/')) {
      // Token-guarded for reads too: entries hold request headers and bodies.
      if (!authorized(req, state.token)) return unauthorized(res, state.token);
      handleDeadLetters(
        {
          journals: () => state.proxy.runtime.journals ?? new Map(),
          replay: state.replayDeadLetter,
          metrics: state.metrics,
          log: state.proxy.log,
        },
        req,
        res,
        path,
        query,
        json,
      );
      return;
    }
    if (method === 'GET' || method === 'HEAD') {
      switch (path) {
        case '/':
          return serveStatusPage(res, method === 'HEAD');
        case '/stats':
          if (state.ops) return json(res, 200, { ...state.ops.stats(), adminToken: Boolean(state.token) });
          break;
        case '/events':
          return eventsDocument(state, res, query);
        case '/livez':
        case '/healthz':
          return json(res, 200, { status: 'alive' });
        case '/readyz': {
          const ready = state.ready && !state.proxy.draining;
          return json(res, ready ? 200 : 503, { status: ready ? 'ready' : state.proxy.draining ? 'draining' : 'starting' });
        }
        case '/health':
          return json(res, 200, healthDocument(state));
        case '/breakers':
          return json(res, 200, breakerList(state));
        case '/config':
          return json(res, 200, state.proxy.runtime.config);
      }
      return json(res, 404, { error: { code: 'NOT_FOUND', message: `no admin endpoint ${path}` } });
    }
    if (method !== 'POST') return json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed` } }, { allow: 'GET, HEAD, POST' });

    const bm = /^\/breakers\/([^/]+)\/(isolate|reset)$/.exec(path);
    if (!bm && path !== '/reload') return json(res, 404, { error: { code: 'NOT_FOUND', message: `no admin endpoint POST ${path}` } });
    if (!authorized(req, state.token)) return unauthorized(res, state.token);
    if (path === '/reload') {
      state.reload().then(
        (problems) => json(res, problems.length ? 422 : 200, problems.length ? { result: 'rejected', problems } : { result: 'success', config: { hash: state.proxy.runtime.loaded.hash } }),
        (err: unknown) => json(res, 500, { result: 'error', message: String(err) }),
      );
      return;
    }
    let name: string;
    try {
      name = decodeURIComponent((bm as RegExpExecArray)[1] as string);
    } catch {
      // A malformed %-escape would otherwise throw out of the request listener and crash the process.
      return json(res, 400, { error: { code: 'BAD_REQUEST', message: 'the breaker name is not valid percent-encoding' } });
    }
    const action = (bm as RegExpExecArray)[2];
    const breaker = state.proxy.runtime.breaker(name);
    if (!breaker) return json(res, 404, { error: { code: 'NOT_FOUND', message: `no breaker named ${JSON.stringify(name)}` } });
    if (action === 'isolate') breaker.isolate();
    else breaker.reset();
    state.proxy.log.warn({ breaker: name, action }, `breaker ${action} by admin`);
    if (action === 'reset') state.ops?.events.emit('breaker_reset', 'info', { breaker: name }, 'breaker reset by admin');
    return json(res, 200, breaker.snapshot());
  };
}

/** The probe endpoints, the only ones the status listener serves. */
const STATUS_PATHS = new Set(['/livez', '/healthz', '/readyz', '/health']);

/**
 * The status listener (Istio's 15021): read-only probes on an address the kubelet can reach,
 * so the admin listener with its actions and /config can stay on loopback.
 */
export function createStatusHandler(state: AdminState): (req: IncomingMessage, res: ServerResponse) => void {
  const admin = createAdminHandler(state);
  return (req, res) => {
    const method = req.method ?? 'GET';
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    if (method !== 'GET' && method !== 'HEAD') {
      req.resume();
      return json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'the status listener is read-only' } }, { allow: 'GET, HEAD' });
    }
    if (!STATUS_PATHS.has(path)) {
      req.resume();
      return json(res, 404, { error: { code: 'NOT_FOUND', message: `the status listener serves only /livez, /readyz and /health; ${path} is on the admin listener` } });
    }
    admin(req, res);
  };
}

export function createMetricsHandler(metrics: Metrics): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found; metrics are at GET /metrics\n');
      return;
    }
    const head = { 'content-type': metrics.registry.contentType };
    if (req.method === 'HEAD') {
      // Nothing of the body goes out, so none is rendered.
      res.writeHead(200, head);
      res.end();
      return;
    }
    // Streamed as it is rendered: the event loop runs between chunks, and a slow scraper
    // paces the rendering through the socket's backpressure instead of piling up text. Up to
    // HELD_METRICS_BYTES is held first, so a text that fits goes out with a Content-Length
    // whether the renderer cut it into one chunk or, on a busy event loop, several.
    const held: Buffer[] = [];
    let heldBytes = 0;
    let streaming = false;
    metrics
      .scrape((chunk) => {
        if (res.destroyed) throw new ScrapeAbandoned();
        if (!streaming && heldBytes + chunk.length <= HELD_METRICS_BYTES) {
          held.push(chunk);
          heldBytes += chunk.length;
          return undefined;
        }
        if (!streaming) {
          streaming = true;
          res.writeHead(200, head);
          for (const c of held) res.write(c);
          held.length = 0;
        }
        return res.write(chunk) ? undefined : drained(res);
      })
      .then(
        () => {
          if (res.destroyed) return;
          if (streaming) return void res.end();
          const body = held.length === 1 ? (held[0] as Buffer) : Buffer.concat(held, heldBytes);
          res.writeHead(200, { ...head, 'content-length': String(body.length) });
          res.end(body);
        },
        (err: unknown) => {
          if (err instanceof ScrapeAbandoned) return;
          if (streaming) {
            // Mid-body: cut the connection, or the scraper would store a truncated scrape.
            res.destroy(err instanceof Error ? err : new Error(String(err)));
            return;
          }
          res.writeHead(500, { 'content-type': 'text/plain' });
          res.end(`failed to collect metrics: ${String(err)}\n`);
        },
      );
  };
}

/** The scraper went away mid-scrape: stop rendering for it. */
class ScrapeAbandoned extends Error {}

function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}
