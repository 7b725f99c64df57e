import { describe, expect, it } from 'vitest';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { StaleIfErrorConfig, FallbackOn } from '../../src/config/schema.js';
import { ProxyError } from '../../src/errors.js';
import { Exchange, type BodyTap, type Reply, type RouteContext } from '../../src/exchange/exchange.js';
import { ENTRY_OVERHEAD, StaleCache, StalePlan, cacheKey, parseCacheControl, storagePlan, type StoragePlan } from '../../src/policies/stale-cache.js';

const SETTINGS: StaleIfErrorConfig = { maxAge: 300_000, maxEntries: 1000, maxBytes: 32 * 1024 * 1024, maxEntryBytes: 1024 * 1024, vary: ['accept', 'accept-encoding'] };
const VARY = new Set(SETTINGS.vary);

function gauge() {
  return {
    value: 0,
    inc(n: number) {
      this.value += n;
    },
    dec(n: number) {
      this.value -= n;
    },
  };
}

function clock(start = 1_000_000) {
  const c = { t: start, now: () => c.t };
  return c;
}

const plan = (method: string, status: number, res: string[], req: Record<string, string> = {}, settings = SETTINGS) => storagePlan(method, status, req, res, settings, VARY);

describe('parseCacheControl', () => {
  it('reads names case-insensitively, values plain or quoted, the first of a repeat', () => {
    const d = parseCacheControl('Max-Age=60, no-cache="set-cookie, x-a", PUBLIC,max-age=5 , stale-if-error = 30');
    expect([...d]).toEqual([
      ['max-age', '60'],
      ['no-cache', 'set-cookie, x-a'],
      ['public', ''],
      ['stale-if-error', '30'],
    ]);
    expect([...parseCacheControl('')]).toEqual([]);
    expect(parseCacheControl('a="x\\"y", b').get('a')).toBe('x"y');
  });
});

describe('storagePlan: what HTTP lets this cache keep', () => {
  it('stores the listed statuses of GET and HEAD only', () => {
    for (const s of [200, 203, 204, 300, 301, 404, 410]) expect(plan('GET', s, []), String(s)).not.toBeNull();
    for (const s of [201, 206, 302, 304, 307, 400, 401, 403, 429, 500, 503]) expect(plan('GET', s, []), String(s)).toBeNull();
    expect(plan('HEAD', 200, [])).not.toBeNull();
    for (const m of ['POST', 'PUT', 'DELETE', 'OPTIONS']) expect(plan(m, 200, [])).toBeNull();
  });

  it('refuses no-store, private, no-cache, must-revalidate, proxy-revalidate and Set-Cookie', () => {
    for (const cc of ['no-store', 'private', 'Private="x"', 'no-cache', 'must-revalidate', 'max-age=60, proxy-revalidate']) {
      expect(plan('GET', 200, ['cache-control', cc]), cc).toBeNull();
    }
    // Split over two header lines counts the same.
    expect(plan('GET', 200, ['cache-control', 'max-age=5', 'cache-control', 'no-store'])).toBeNull();
    expect(plan('GET', 200, ['set-cookie', 'sid=1'])).toBeNull();
    expect(plan('GET', 200, ['cache-control', 'public, max-age=60'])).not.toBeNull();
  });

  it('honours the request: no-store, and Authorization unless the response is public', () => {
    expect(plan('GET', 200, [], { 'cache-control': 'no-store' })).toBeNull();
    expect(plan('GET', 200, [], { authorization: 'Bearer x' })).toBeNull();
    expect(plan('GET', 200, ['cache-control', 'public'], { authorization: 'Bearer x' })).not.toBeNull();
  });

  it('respects Vary: only headers the key holds; never *', () => {
    expect(plan('GET', 200, ['vary', 'Accept, accept-encoding'])).not.toBeNull();
    expect(plan('GET', 200, ['vary', 'accept', 'vary', 'cookie'])).toBeNull();
    expect(plan('GET', 200, ['vary', '*'])).toBeNull();
    expect(plan('GET', 200, ['vary', 'user-agent'])).toBeNull();
  });

  it('s-maxage (proxy-revalidate for a shared cache) only with the origin\'s stale-if-error', () => {
    expect(plan('GET', 200, ['cache-control', 's-maxage=60'])).toBeNull();
    expect(plan('GET', 200, ['cache-control', 's-maxage=60, stale-if-error=30'])?.limitMs).toBe(90_000);
  });

  it('stale-if-error=N caps maxAge at the freshness lifetime plus N (RFC 5861)', () => {
    expect(plan('GET', 200, [])?.limitMs).toBe(300_000);
    expect(plan('GET', 200, ['cache-control', 'stale-if-error=10'])?.limitMs).toBe(10_000);
    expect(plan('GET', 200, ['cache-control', 'max-age=20, stale-if-error=10'])?.limitMs).toBe(30_000);
    // Never raised above maxAge, and a malformed value is ignored.
    expect(plan('GET', 200, ['cache-control', 'stale-if-error=99999'])?.limitMs).toBe(300_000);
    expect(plan('GET', 200, ['cache-control', 'stale-if-error=soon'])?.limitMs).toBe(300_000);
    // Already older than its limit (an upstream cache's Age): not worth storing.
    expect(plan('GET', 200, ['cache-control', 'stale-if-error=10', 'age', '10'])).toBeNull();
    expect(plan('GET', 200, ['age', '7'])?.initialAge).toBe(7);
  });

  it('drops bodies declared over maxEntryBytes, and keeps the fields that are not recomputed', () => {
    expect(plan('GET', 200, ['content-length', String(SETTINGS.maxEntryBytes + 1)])).toBeNull();
    // HEAD's Content-Length is the GET body's, not one to store.
    expect(plan('HEAD', 200, ['content-length', String(SETTINGS.maxEntryBytes + 1)])?.headContentLength).toBe(String(SETTINGS.maxEntryBytes + 1));
    const p = plan('GET', 200, ['content-type', 'text/plain', 'content-length', '5', 'age', '1', 'cache-status', 'edge; hit', 'x-request-id', 'abc', 'etag', '"v1"']) as StoragePlan;
    expect(p.headers).toEqual(['content-type', 'text/plain', 'etag', '"v1"']);
    expect(p.expectedLength).toBe(5);
    expect(p.cacheStatus).toBe('edge; hit, outrigger; hit; stale');
  });
});

describe('cacheKey', () => {
  it('holds method, authority, path with query and each vary header, absent differing from empty', () => {
    const k = (h: Record<string, string>) => cacheKey('GET', 'Svc:80', '/a?x=1', h, SETTINGS.vary);
    expect(k({ accept: 'text/html' })).toBe(k({ accept: ' text/html ' }));
    expect(k({ accept: 'text/html' })).not.toBe(k({ accept: 'application/json' }));
    expect(k({})).not.toBe(k({ accept: '' }));
    expect(k({ 'user-agent': 'a' })).toBe(k({ 'user-agent': 'b' }));
    expect(cacheKey('GET', 'svc', '/a?x=1', {}, [])).not.toBe(cacheKey('GET', 'svc', '/a?x=2', {}, []));
    expect(cacheKey('GET', 'svc', '/a', {}, [])).not.toBe(cacheKey('HEAD', 'svc', '/a', {}, []));
    expect(cacheKey('GET', 'SVC', '/a', {}, [])).toBe(cacheKey('GET', 'svc', '/a', {}, []));
  });
});

const P = (extra: Partial<StoragePlan> = {}): StoragePlan => ({ headers: ['content-type', 'text/plain'], headContentLength: null, cacheStatus: 'outrigger; hit; stale', initialAge: 0, limitMs: 60_000, expectedLength: -1, ...extra });
const sizeOf = (key: string, body: number) => body + 'content-type'.length + 'text/plain'.length + key.length + ENTRY_OVERHEAD;

describe('StaleCache', () => {
  it('evicts the least recently used past maxEntries; a hit refreshes an entry', () => {
    const c = new StaleCache({ ...SETTINGS, maxEntries: 2 }, null, gauge());
    c.store('a', 200, P(), Buffer.from('A'), 0, Date.now());
    c.store('b', 200, P(), Buffer.from('B'), 0, Date.now());
    expect(c.lookup('a')?.body.toString()).toBe('A');
    c.store('c', 200, P(), Buffer.from('C'), 0, Date.now());
    expect(c.size).toBe(2);
    expect(c.lookup('b')).toBeNull();
    expect(c.lookup('a')).not.toBeNull();
    expect(c.lookup('c')).not.toBeNull();
  });

  it('evicts by bytes, counts body, headers, key and overhead, and keeps the gauge in step', () => {
    const g = gauge();
    const c = new StaleCache({ ...SETTINGS, maxBytes: sizeOf('k1', 100) * 2 }, null, g);
    c.store('k1', 200, P(), Buffer.alloc(100), 0, Date.now());
    c.store('k2', 200, P(), Buffer.alloc(100), 0, Date.now());
    expect(c.bytes).toBe(sizeOf('k1', 100) * 2);
    c.store('k3', 200, P(), Buffer.alloc(101), 0, Date.now());
    expect(c.size).toBe(1);
    expect(c.lookup('k3')).not.toBeNull();
    expect(c.bytes).toBe(sizeOf('k3', 101));
    expect(g.value).toBe(c.bytes);
    // Replacing an entry under the same key releases the old bytes first.
    c.store('k3', 200, P(), Buffer.alloc(10), 0, Date.now());
    expect([c.size, c.bytes, g.value]).toEqual([1, sizeOf('k3', 10), sizeOf('k3', 10)]);
    // Larger than the whole budget: refused, nothing evicted for it.
    expect(c.store('big', 200, P(), Buffer.alloc(sizeOf('k1', 100) * 2), 0, Date.now())).toBe(false);
    expect(c.size).toBe(1);
    c.close();
    expect([c.size, c.bytes, g.value]).toEqual([0, 0, 0]);
    expect(c.store('k4', 200, P(), Buffer.alloc(1), 0, Date.now())).toBe(false);
  });

  it('expires an entry at its limit, counting the Age it came with', () => {
    const t = clock();
    const g = gauge();
    const c = new StaleCache(SETTINGS, null, g, t.now);
    c.store('a', 200, P({ limitMs: 1000 }), Buffer.from('A'), 0, t.now());
    c.store('b', 200, P({ limitMs: 1000, initialAge: 0.5 }), Buffer.from('B'), 0, t.now());
    t.t += 600;
    expect(c.lookup('a')).not.toBeNull();
    expect(c.lookup('b')).toBeNull();
    t.t += 400;
    expect(c.lookup('a')).toBeNull();
    expect([c.size, g.value]).toEqual([0, 0]);
    // Expired while its body streamed: not stored.
    expect(c.store('c', 200, P({ limitMs: 1000 }), Buffer.from('C'), 0, t.now() - 1000)).toBe(false);
  });

  it('drops entries of an older breaker epoch on first use, and refuses one that streamed across a recovery', () => {
    const breaker = { epoch: 0 };
    const g = gauge();
    const c = new StaleCache(SETTINGS, breaker, g);
    c.store('a', 200, P(), Buffer.from('A'), c.epoch, Date.now());
    c.store('b', 200, P(), Buffer.from('B'), c.epoch, Date.now());
    expect(c.lookup('a')).not.toBeNull();
    breaker.epoch = 1; // the breaker closed again
    expect(c.lookup('a')).toBeNull();
    expect(c.size).toBe(1); // 'b' goes when it is next used (or evicted)
    expect(c.lookup('b')).toBeNull();
    expect([c.size, g.value]).toEqual([0, 0]);
    // Head arrived at epoch 1, body ended after another recovery: it predates that one.
    expect(c.store('c', 200, P(), Buffer.from('C'), 1, Date.now())).toBe(true);
    breaker.epoch = 2;
    expect(c.store('d', 200, P(), Buffer.from('D'), 1, Date.now())).toBe(false);
  });
});

// --- the layer, over fake exchanges and replies ----------------------------------------

interface Sent {
  status: number;
  headers: string[];
  body: string;
}

function fakeExchange(path: string, opts: { method?: string; headers?: Record<string, string>; upgrade?: boolean } = {}) {
  const counted = { fallbacks: [] as FallbackOn[], stale: 0 };
  const route = {
    name: 'r',
    config: { timeout: 0 },
    upstream: { pick: () => 0, after: () => 0 },
    budget: { recordRequest() {}, tryAcquire: () => true },
    metrics: {
      budgetExhausted: { inc() {} },
      overload: { inc() {} },
      retry() {},
      timeout() {},
      fallback: (t: FallbackOn) => counted.fallbacks.push(t),
      staleServed: () => counted.stale++,
    },
  } as unknown as RouteContext;
  const sent: Sent = { status: 0, headers: [], body: '' };
  const res = {
    writeHead(status: number, headers: string[]) {
      sent.status = status;
      sent.headers = headers;
    },
    end(body?: Buffer) {
      sent.body = body?.toString() ?? '';
    },
  } as unknown as ServerResponse;
  const req = { headers: opts.headers ?? {}, rawHeaders: [] } as unknown as IncomingMessage;
  const ex = new Exchange(req, res, route, opts.method ?? 'GET', 'id', { draining: false });
  const q = path.indexOf('?');
  ex.path = q === -1 ? path : path.slice(0, q);
  ex.upstreamPath = path;
  ex.authority = 'svc';
  if (opts.upgrade) ex.upgrade = {} as never;
  return { ex, sent, counted };
}

/** An upstream reply that streams `chunks` into its tap when sent; `cut` aborts instead of ending. */
class FakeReply implements Reply {
  readonly retryAfter = null;
  tapped: BodyTap | null = null;
  discarded = false;
  constructor(
    readonly status: number,
    readonly responseHeaders: string[],
    private readonly chunks: string[] = [],
    private readonly cut = false,
  ) {}
  tap(t: BodyTap): boolean {
    this.tapped = t;
    return true;
  }
  send(): void {
    for (const c of this.chunks) this.tapped?.data(Buffer.from(c));
    if (this.cut) this.tapped?.abort();
    else this.tapped?.end();
  }
  discard(): void {
    this.discarded = true;
    this.tapped?.abort();
  }
}

function layer(settings: Partial<StaleIfErrorConfig> = {}, on: FallbackOn[] = ['breaker-open', 'upstream-unavailable', 'timeout', '5xx']) {
  const g = gauge();
  const cache = new StaleCache({ ...SETTINGS, ...settings }, null, g);
  const sp = new StalePlan(cache, new Set(on));
  let next: () => Promise<Reply> = () => Promise.reject(new Error('unset'));
  const handler = sp.layer(() => next());
  return {
    cache,
    gauge: g,
    /** Runs one request through the layer with `answer` as what the inner stack produced, and sends the result. */
    async run(path: string, answer: Reply | Error, opts: Parameters<typeof fakeExchange>[1] = {}) {
      const f = fakeExchange(path, opts);
      next = () => (answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer));
      let reply: Reply;
      try {
        reply = await handler(f.ex);
      } catch (err) {
        return { ...f, error: err as Error, reply: null };
      }
      reply.send(f.ex);
      return { ...f, error: null, reply };
    },
  };
}

const header = (headers: string[], name: string) => {
  const i = headers.indexOf(name);
  return i === -1 ? undefined : headers[i + 1];
};

describe('StalePlan layer', () => {
  it('stores a whole response as it streams and serves it on a listed trigger', async () => {
    const l = layer();
    const ok = await l.run('/a?x=1', new FakeReply(200, ['content-type', 'text/plain'], ['he', 'llo']));
    expect(ok.sent).toMatchObject({ body: '' }); // the fake reply writes nothing itself
    expect(l.cache.size).toBe(1);
    const down = await l.run('/a?x=1', new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE'));
    expect(down.error).toBeNull();
    expect(down.sent.status).toBe(200);
    expect(down.sent.body).toBe('hello');
    expect(header(down.sent.headers, 'x-outrigger-fallback')).toBe('stale');
    expect(header(down.sent.headers, 'cache-status')).toBe('outrigger; hit; stale');
    expect(header(down.sent.headers, 'age')).toBe('0');
    expect(header(down.sent.headers, 'content-length')).toBe('5');
    expect(header(down.sent.headers, 'content-type')).toBe('text/plain');
    expect(down.ex.fallbackTrigger).toBe('upstream-unavailable');
    expect(down.counted).toEqual({ fallbacks: ['upstream-unavailable'], stale: 1 });
    // Another query string is another entry.
    expect((await l.run('/a?x=2', new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE'))).error).toBeInstanceOf(ProxyError);
  });

  it('never stores a body that was cut, nor one over maxEntryBytes', async () => {
    const l = layer({ maxEntryBytes: 4 });
    await l.run('/cut', new FakeReply(200, [], ['par'], true));
    await l.run('/big', new FakeReply(200, [], ['abc', 'de']));
    await l.run('/fits', new FakeReply(200, [], ['ab', 'cd']));
    expect(l.cache.size).toBe(1);
    expect((await l.run('/cut', new ProxyError('OUTRIGGER_TIMEOUT'))).error).toBeInstanceOf(ProxyError);
    expect((await l.run('/big', new ProxyError('OUTRIGGER_TIMEOUT'))).error).toBeInstanceOf(ProxyError);
    expect((await l.run('/fits', new ProxyError('OUTRIGGER_TIMEOUT'))).sent.body).toBe('abcd');
  });

  it('answers a final 5xx only when 5xx is listed, discarding it; other triggers only when listed', async () => {
    const with5xx = layer();
    await with5xx.run('/a', new FakeReply(200, [], ['v1']));
    const boom = new FakeReply(503, []);
    const r = await with5xx.run('/a', boom);
    expect([r.sent.body, boom.discarded, r.ex.fallbackTrigger]).toEqual(['v1', true, '5xx']);

    const without = layer({}, ['timeout']);
    await without.run('/a', new FakeReply(200, [], ['v1']));
    const boom2 = new FakeReply(503, []);
    const r2 = await without.run('/a', boom2);
    expect([r2.reply, boom2.discarded]).toEqual([boom2, false]);
    expect((await without.run('/a', new ProxyError('OUTRIGGER_BREAKER_OPEN'))).error).toBeInstanceOf(ProxyError);
    expect((await without.run('/a', new ProxyError('OUTRIGGER_TIMEOUT'))).sent.body).toBe('v1');
    // Errors that are no trigger at all pass through untouched.
    expect((await without.run('/a', new ProxyError('OUTRIGGER_INTERNAL'))).error).toBeInstanceOf(ProxyError);
  });

  it('keeps Vary variants apart and refuses a Vary it cannot key on', async () => {
    const l = layer();
    await l.run('/v', new FakeReply(200, ['vary', 'accept'], ['json']), { headers: { accept: 'application/json' } });
    await l.run('/v', new FakeReply(200, ['vary', 'accept'], ['text']), { headers: { accept: 'text/plain' } });
    await l.run('/c', new FakeReply(200, ['vary', 'cookie'], ['mine']));
    expect(l.cache.size).toBe(2);
    const err = new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect((await l.run('/v', err, { headers: { accept: 'application/json' } })).sent.body).toBe('json');
    expect((await l.run('/v', err, { headers: { accept: 'text/plain' } })).sent.body).toBe('text');
    expect((await l.run('/v', err, { headers: { accept: 'image/png' } })).error).toBe(err);
  });

  it('leaves other methods and upgrades alone, and keeps HEAD apart from GET', async () => {
    const l = layer();
    const post = new FakeReply(200, [], ['x']);
    await l.run('/p', post, { method: 'POST' });
    expect(post.tapped).toBeNull();
    const up = new FakeReply(200, [], ['x']);
    await l.run('/u', up, { upgrade: true });
    expect(up.tapped).toBeNull();
    await l.run('/h', new FakeReply(200, ['content-length', '12']), { method: 'HEAD' });
    const err = new ProxyError('OUTRIGGER_TIMEOUT');
    expect((await l.run('/h', err)).error).toBe(err);
    const head = await l.run('/h', err, { method: 'HEAD' });
    expect([head.sent.status, head.sent.body, header(head.sent.headers, 'content-length')]).toEqual([200, '', '12']);
    expect((await l.run('/p', err, { method: 'POST' })).error).toBe(err);
  });

  it('stays within maxEntries and maxBytes over 10,000 distinct URLs', async () => {
    const maxBytes = 256 * 1024;
    const l = layer({ maxEntries: 1000, maxBytes });
    const body = 'x'.repeat(300);
    let peakBytes = 0;
    let peakEntries = 0;
    for (let i = 0; i < 10_000; i++) {
      await l.run(`/item/${i}?q=${i}`, new FakeReply(200, ['content-type', 'text/plain', 'etag', `"${i}"`], [body]));
      peakBytes = Math.max(peakBytes, l.cache.bytes);
      peakEntries = Math.max(peakEntries, l.cache.size);
    }
    expect(peakBytes).toBeLessThanOrEqual(maxBytes);
    expect(peakEntries).toBeLessThanOrEqual(1000);
    // Bytes were the binding bound here: the cache is nearly full, and holds the newest URLs.
    expect(l.cache.bytes).toBeGreaterThan(maxBytes - 1024);
    expect(l.gauge.value).toBe(l.cache.bytes);
    const err = new ProxyError('OUTRIGGER_TIMEOUT');
    expect((await l.run('/item/9999?q=9999', err)).sent.body).toBe(body);
    expect((await l.run('/item/0?q=0', err)).error).toBe(err);

    // With small bodies, maxEntries binds instead.
    const e = layer({ maxEntries: 1000 });
    for (let i = 0; i < 10_000; i++) await e.run(`/s/${i}`, new FakeReply(200, [], ['y']));
    expect(e.cache.size).toBe(1000);
    expect(e.gauge.value).toBe(e.cache.bytes);
  });
});
