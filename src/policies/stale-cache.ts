// Stale-if-error: the route keeps its last good GET and HEAD responses and, when the route
// would otherwise fail (a fallback trigger, or a final 5xx when `5xx` is listed), answers
// with the stored one instead of the static fallback (RFC 5861's stale-if-error, decided
// by the operator; an upstream `stale-if-error=N` narrows it).
//
// What is kept follows HTTP caching (RFC 9111): a storable status, nothing that forbids a
// shared cache to store the response or to serve it stale, a Vary the key can honour, and
// only a body that arrived whole. The body is teed off the client's stream as it passes
// (Reply.tap), never buffered ahead of the client.
//
// Entries carry the breaker's epoch (Breaker.epoch, one more on every transition to
// closed). An entry from an older epoch was stored before the breaker last recovered, so
// it is dropped when next looked up: after an outage only data stored since the recovery
// is served, and what was stored while an operator held the breaker isolated never
// outlives the reset. The README has the timeline.
//
// Memory is bounded per route by maxEntries and maxBytes (least recently used first).
import type { FallbackOn, StaleIfErrorConfig } from '../config/schema.js';
import type { BodyTap, ByteGaugePort, Exchange, Handler, Reply, RouteContext } from '../exchange/exchange.js';
import { triggerOf } from './fallback.js';

/** Statuses stored: the successful GET/HEAD answers a cache may keep by default (RFC 9110 15.1). */
export const STORABLE_STATUSES: ReadonlySet<number> = new Set([200, 203, 204, 300, 301, 404, 410]);

/** Bytes counted per entry on top of its body, header names and values and key: its bookkeeping. */
export const ENTRY_OVERHEAD = 128;

/**
 * Response fields not stored: recomputed when served (age, content-length, cache-status) or
 * belonging to the exchange that stored it (an echoed x-request-id would mislead a trace).
 */
const NOT_STORED = new Set(['age', 'content-length', 'trailer', 'cache-status', 'x-outrigger-attempts', 'x-outrigger-fallback', 'x-request-id', 'connection']);

const STALE_STATUS = 'outrigger; hit; stale';

/**
 * Cache-Control directives by lower-case name; a directive without a value maps to ''.
 * Quoted values are unquoted; the first of a repeated directive wins.
 */
export function parseCacheControl(value: string): Map<string, string> {
  const out = new Map<string, string>();
  const n = value.length;
  let i = 0;
  while (i < n) {
    while (i < n && (value[i] === ',' || value[i] === ' ' || value[i] === '\t')) i++;
    let j = i;
    while (j < n && value[j] !== '=' && value[j] !== ',') j++;
    const name = value.slice(i, j).trim().toLowerCase();
    let v = '';
    if (j < n && value[j] === '=') {
      j++;
      while (j < n && (value[j] === ' ' || value[j] === '\t')) j++;
      if (value[j] === '"') {
        let s = '';
        j++;
        while (j < n && value[j] !== '"') {
          if (value[j] === '\\' && j + 1 < n) j++;
          s += value[j];
          j++;
        }
        v = s;
        while (j < n && value[j] !== ',') j++;
      } else {
        const start = j;
        while (j < n && value[j] !== ',') j++;
        v = value.slice(start, j).trim();
      }
    }
    if (name !== '' && !out.has(name)) out.set(name, v);
    i = j;
  }
  return out;
}

/** A delta-seconds value (RFC 9111 1.2.2), or null when absent or malformed. */
function deltaSeconds(v: string | undefined): number | null {
  return v !== undefined && /^[0-9]+$/.test(v) ? Number(v) : null;
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v.join(', ') : v;
}

/**
 * The store key: method, authority, path with query, then the request's value of each
 * configured `vary` header (an absent header differs from an empty one).
 */
export function cacheKey(method: string, authority: string, pathWithQuery: string, headers: Record<string, string | string[] | undefined>, vary: readonly string[]): string {
  let key = `${method}\n${authority.toLowerCase()}\n${pathWithQuery}`;
  for (const name of vary) {
    const v = headerValue(headers[name]);
    key += v === undefined ? '\n\u0000' : `\n${v.trim()}`;
  }
  return key;
}

function keyOf(ex: Exchange, vary: readonly string[]): string {
  const up = ex.upstreamPath;
  const q = up.indexOf('?');
  return cacheKey(ex.method, ex.authority, q === -1 ? ex.path : ex.path + up.slice(q), ex.req.headers, vary);
}

/** How long a response may be kept, decided from the exchange and the response head. */
export interface StoragePlan {
  /** Stored fields, minus those recomputed when served. */
  headers: string[];
  /** The Content-Length a stored HEAD answer repeats; null otherwise. */
  headContentLength: string | null;
  /** The Cache-Status value sent with it: the upstream's, then ours. */
  cacheStatus: string;
  /** Seconds of Age the response already had (an upstream cache's Age). */
  initialAge: number;
  /** Milliseconds of age past which it is never served: maxAge, or less per stale-if-error. */
  limitMs: number;
  /** The body length the response declares; -1 when unknown (chunked) or when it has none. */
  expectedLength: number;
}

/**
 * Whether HTTP lets a shared cache keep this response and serve it stale, and for how
 * long; null when it must not be stored. `reqHeaders` are the client's (Node's parsed
 * object), `resHeaders` the response head as flat lower-case name/value pairs.
 */
export function storagePlan(
  method: string,
  status: number,
  reqHeaders: Record<string, string | string[] | undefined>,
  resHeaders: readonly string[],
  settings: Pick<StaleIfErrorConfig, 'maxAge' | 'maxEntryBytes'>,
  varyAllowed: ReadonlySet<string>,
): StoragePlan | null {
  if ((method !== 'GET' && method !== 'HEAD') || !STORABLE_STATUSES.has(status)) return null;
  // RFC 9111 3: a request's no-store forbids storing its response.
  const reqCc = headerValue(reqHeaders['cache-control']);
  if (reqCc !== undefined && parseCacheControl(reqCc).has('no-store')) return null;

  let cc = '';
  let age = '';
  let length = -1;
  let prior: string | null = null;
  const headers: string[] = [];
  for (let i = 0; i < resHeaders.length; i += 2) {
    const name = resHeaders[i] as string;
    const value = resHeaders[i + 1] as string;
    switch (name) {
      case 'set-cookie':
        // Someone's session: never replayed to anyone else.
        return null;
      case 'cache-control':
        cc = cc === '' ? value : `${cc}, ${value}`;
        break;
      case 'vary':
        // RFC 9111 4.1: a stored response is selected only by the request fields its Vary
        // names, so each must be one the key holds; `*` never matches.
        for (const part of value.split(',')) {
          const v = part.trim().toLowerCase();
          if (v !== '' && !varyAllowed.has(v)) return null;
        }
        break;
      case 'age':
        age = value;
        break;
      case 'content-length':
        length = Number(value);
        break;
      case 'cache-status':
        prior = prior === null ? value : `${prior}, ${value}`;
        break;
    }
    if (!NOT_STORED.has(name)) headers.push(name, value);
  }

  const d = parseCacheControl(cc);
  // no-store and private forbid a shared cache to store it (RFC 9111 5.2.2.5, 5.2.2.7);
  // no-cache, must-revalidate and proxy-revalidate forbid serving it stale without the
  // origin's say (4.2.4), which is all this cache ever does.
  if (d.has('no-store') || d.has('private') || d.has('no-cache') || d.has('must-revalidate') || d.has('proxy-revalidate')) return null;
  const staleIfError = deltaSeconds(d.get('stale-if-error'));
  // s-maxage carries proxy-revalidate for shared caches (5.2.2.10): only the origin's own
  // stale-if-error lets it be served stale.
  if (d.has('s-maxage') && staleIfError === null) return null;
  // RFC 9111 3.5: an authenticated request's answer is shared only when marked public.
  if (reqHeaders.authorization !== undefined && !d.has('public')) return null;

  const bodiless = method === 'HEAD' || status === 204;
  if (!bodiless && length > settings.maxEntryBytes) return null;

  let limitMs = settings.maxAge;
  if (staleIfError !== null) {
    // RFC 5861 4: usable on error for N seconds after it becomes stale, so until its
    // freshness lifetime (s-maxage, else max-age, else none) plus N.
    const fresh = deltaSeconds(d.get('s-maxage')) ?? deltaSeconds(d.get('max-age')) ?? 0;
    limitMs = Math.min(limitMs, (fresh + staleIfError) * 1000);
  }
  const initialAge = deltaSeconds(age.split(',')[0]?.trim()) ?? 0;
  if (initialAge * 1000 >= limitMs) return null;
  return {
    headers,
    headContentLength: method === 'HEAD' && length >= 0 ? String(length) : null,
    cacheStatus: prior === null ? STALE_STATUS : `${prior}, ${STALE_STATUS}`,
    initialAge,
    limitMs,
    expectedLength: bodiless ? -1 : length,
  };
}

export interface StaleEntry {
  readonly key: string;
  readonly status: number;
  readonly plan: StoragePlan;
  readonly body: Buffer;
  /** The breaker epoch when the response head arrived. */
  readonly epoch: number;
  /** Date.now() when the response head arrived. */
  readonly responseTime: number;
  /** Date.now() from which it is never served. */
  readonly expiresAt: number;
  /** What it counts against maxBytes. */
  readonly size: number;
}

function headerBytes(headers: readonly string[]): number {
  let n = 0;
  for (const h of headers) n += h.length;
  return n;
}

/**
 * One route's store: a Map in least-recently-used order (a hit moves an entry to the end,
 * eviction takes from the front), bounded by entries and bytes.
 */
export class StaleCache {
  private readonly entries = new Map<string, StaleEntry>();
  private held = 0;
  private closed = false;

  constructor(
    readonly settings: StaleIfErrorConfig,
    /** The route's breaker (its epoch); null when the route has none. */
    readonly breaker: { readonly epoch: number } | null,
    private readonly gauge: ByteGaugePort,
    readonly now: () => number = Date.now,
  ) {}

  get epoch(): number {
    return this.breaker === null ? 0 : this.breaker.epoch;
  }

  /** Entries held. */
  get size(): number {
    return this.entries.size;
  }

  /** Bytes held, as counted against maxBytes. */
  get bytes(): number {
    return this.held;
  }

  /** The entry for `key` if it may be served now; an expired or older-epoch one is dropped. */
  lookup(key: string): StaleEntry | null {
    const e = this.entries.get(key);
    if (e === undefined) return null;
    if (e.epoch !== this.epoch || this.now() >= e.expiresAt) {
      this.remove(e);
      return null;
    }
    this.entries.delete(key);
    this.entries.set(key, e);
    return e;
  }

  /**
   * Keeps a whole response, replacing any entry under its key and evicting the least
   * recently used ones until it fits. Refused when it could never fit, when it expired
   * while its body streamed, or when the breaker recovered meanwhile (it predates that).
   */
  store(key: string, status: number, plan: StoragePlan, body: Buffer, epoch: number, responseTime: number): boolean {
    if (this.closed || epoch !== this.epoch) return false;
    const expiresAt = responseTime - plan.initialAge * 1000 + plan.limitMs;
    if (this.now() >= expiresAt) return false;
    const size = body.length + headerBytes(plan.headers) + key.length + ENTRY_OVERHEAD;
    const { maxBytes, maxEntries } = this.settings;
    if (size > maxBytes) return false;
    const old = this.entries.get(key);
    if (old !== undefined) this.remove(old);
    while (this.entries.size >= maxEntries || this.held + size > maxBytes) {
      const lru = this.entries.values().next().value as StaleEntry;
      this.remove(lru);
    }
    this.entries.set(key, { key, status, plan, body, epoch, responseTime, expiresAt, size });
    this.held += size;
    this.gauge.inc(size);
    return true;
  }

  /** Empties the store for good (its route was removed or rebuilt by a reload). */
  close(): void {
    this.closed = true;
    this.gauge.dec(this.held);
    this.held = 0;
    this.entries.clear();
  }

  private remove(e: StaleEntry): void {
    this.entries.delete(e.key);
    this.held -= e.size;
    this.gauge.dec(e.size);
  }
}

/** Copies a body as it streams and stores it once whole; drops it past maxEntryBytes. */
class Capture implements BodyTap {
  private chunks: Buffer[] = [];
  /** Exactly the declared length, filled in place: no retained transport buffers, no concat. */
  private buf: Buffer | null;
  private bytes = 0;
  private done = false;

  constructor(
    private readonly cache: StaleCache,
    private readonly key: string,
    private readonly status: number,
    private readonly plan: StoragePlan,
    private readonly epoch: number,
    private readonly responseTime: number,
  ) {
    this.buf = plan.expectedLength > 0 ? Buffer.allocUnsafeSlow(plan.expectedLength) : null;
  }

  data(chunk: Buffer): void {
    if (this.done) return;
    const at = this.bytes;
    this.bytes += chunk.length;
    if (this.bytes > this.cache.settings.maxEntryBytes || (this.buf !== null && this.bytes > this.buf.length)) {
      this.abort();
      return;
    }
    if (this.buf !== null) chunk.copy(this.buf, at);
    else this.chunks.push(chunk);
  }

  end(): void {
    if (this.done) return;
    this.done = true;
    let body: Buffer;
    if (this.buf !== null) {
      if (this.bytes !== this.buf.length) return;
      body = this.buf;
    } else {
      // Copied out of the transport's buffers so the entry holds exactly its own bytes.
      body = Buffer.allocUnsafeSlow(this.bytes);
      let at = 0;
      for (const c of this.chunks) at += c.copy(body, at);
    }
    this.chunks = [];
    this.buf = null;
    this.cache.store(this.key, this.status, this.plan, body, this.epoch, this.responseTime);
  }

  abort(): void {
    this.done = true;
    this.chunks = [];
    this.buf = null;
  }
}

/** A stored response sent in place of a failure. */
export class StaleReply implements Reply {
  readonly retryAfter = null;
  readonly status: number;

  constructor(
    private readonly entry: StaleEntry,
    private readonly now: number,
  ) {
    this.status = entry.status;
  }

  /** Whole seconds since the response was generated (RFC 9111 4.2.3): its Age then, plus time here. */
  get age(): number {
    const e = this.entry;
    return Math.max(0, Math.floor(e.plan.initialAge + (this.now - e.responseTime) / 1000));
  }

  send(ex: Exchange): void {
    const e = this.entry;
    const headers = e.plan.headers.slice();
    headers.push('age', String(this.age), 'cache-status', e.plan.cacheStatus, 'x-outrigger-fallback', 'stale');
    const head = ex.method === 'HEAD';
    if (e.plan.headContentLength !== null) headers.push('content-length', e.plan.headContentLength);
    else if (e.status !== 204) headers.push('content-length', String(e.body.length));
    if (ex.attempts > 0) headers.push('x-outrigger-attempts', String(ex.attempts));
    if (ex.closeConnection) headers.push('connection', 'close');
    ex.status = e.status;
    if (!head) ex.bytesOut += e.body.length;
    ex.res.writeHead(e.status, headers);
    ex.res.end(head ? undefined : e.body);
  }

  discard(): void {}
}

/**
 * The layer, just inside fallback: on success it offers the response to the store; on a
 * listed trigger (or a final 5xx with `5xx` listed) it answers from the store, and with no
 * entry passes the failure on for the static fallback (or the error) to answer.
 */
export class StalePlan {
  private readonly on5xx: boolean;
  private readonly vary: readonly string[];
  private readonly varyAllowed: ReadonlySet<string>;

  constructor(
    readonly cache: StaleCache,
    private readonly triggers: ReadonlySet<FallbackOn>,
  ) {
    this.on5xx = triggers.has('5xx');
    this.vary = cache.settings.vary;
    this.varyAllowed = new Set(cache.settings.vary);
  }

  layer<R extends RouteContext>(next: Handler<R>): Handler<R> {
    return (ex) => {
      // Only plain GET and HEAD requests are stored or answered; an upgrade is a GET too.
      if ((ex.method !== 'GET' && ex.method !== 'HEAD') || ex.upgrade !== null) return next(ex);
      return next(ex).then(
        (reply) => this.onReply(ex, reply),
        (err: unknown) => {
          const trigger = triggerOf(err);
          const stale = trigger !== null && this.triggers.has(trigger) ? this.serve(ex, trigger) : null;
          if (stale === null) throw err;
          return stale;
        },
      );
    };
  }

  private onReply(ex: Exchange, reply: Reply): Reply {
    if (reply.status >= 500) {
      if (!this.on5xx) return reply;
      const stale = this.serve(ex, '5xx');
      if (stale === null) return reply;
      reply.discard();
      return stale;
    }
    this.offer(ex, reply);
    return reply;
  }

  /** Tees the response into the store if HTTP allows keeping it; never delays it. */
  private offer(ex: Exchange, reply: Reply): void {
    if (reply.tap === undefined || !STORABLE_STATUSES.has(reply.status)) return;
    const plan = storagePlan(ex.method, reply.status, ex.req.headers, reply.responseHeaders ?? [], this.cache.settings, this.varyAllowed);
    if (plan === null) return;
    const cache = this.cache;
    reply.tap(new Capture(cache, keyOf(ex, this.vary), reply.status, plan, cache.epoch, cache.now()));
  }

  private serve(ex: Exchange, trigger: FallbackOn): StaleReply | null {
    const entry = this.cache.lookup(keyOf(ex, this.vary));
    if (entry === null) return null;
    ex.fallbackTrigger = trigger;
    ex.route.metrics.fallback(trigger);
    ex.route.metrics.staleServed();
    return new StaleReply(entry, this.cache.now());
  }
}
