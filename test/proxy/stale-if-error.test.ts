// fallback.staleIfError end to end: a real proxy in front of real node:http upstreams.
import { request, Agent } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { metricValue, oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req, type Res } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { sleep, waitFor } from '../helpers/wait.js';
import type { StaleCache } from '../../src/policies/stale-cache.js';

const track = useCleanup();
const NO_RETRY = { attempts: 0 };

/**
 * An upstream whose answers the test switches: `up` answers `<version> <url>` (with the
 * per-path headers in `headers`), `reset` drops the connection before any response,
 * `5xx` answers 503. `custom` paths answer however the test says.
 */
async function switchable() {
  const ctl = {
    mode: 'up' as 'up' | 'reset' | '5xx',
    version: 'v1',
    headers: {} as Record<string, Record<string, string>>,
    custom: {} as Record<string, (req: IncomingMessage, res: ServerResponse) => void>,
    up: null as unknown as TestUpstream,
  };
  ctl.up = await startUpstream((rq, res) => {
    const url = rq.url ?? '/';
    const path = url.split('?')[0] as string;
    if (ctl.mode === 'reset') return void rq.socket.destroy();
    if (ctl.mode === '5xx') {
      res.writeHead(503, { 'content-type': 'text/plain', 'content-length': '4' });
      return void res.end('down');
    }
    const custom = ctl.custom[path];
    if (custom) return custom(rq, res);
    const body = `${ctl.version} ${url}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...(ctl.headers[path] ?? {}) });
    res.end(body);
  });
  return ctl;
}

function cacheOf(px: TestProxy): StaleCache {
  const stale = px.app.state.runtime.routes[0]?.stale;
  if (!stale) throw new Error('the route has no stale-if-error cache');
  return stale.cache;
}

/** Waits until the cache holds `n` entries (an entry is stored once its body has ended). */
const stored = (px: TestProxy, n: number) => waitFor(() => cacheOf(px).size === n, { what: `${n} stored entries (have ${cacheOf(px).size})` });

function expectStale(r: Res, body: string, status = 200) {
  expect(r.status).toBe(status);
  expect(r.body).toBe(body);
  expect(r.complete).toBe(true);
  expect(r.headers['x-outrigger-fallback']).toBe('stale');
  expect(r.headers['cache-status']).toBe('outrigger; hit; stale');
  expect(r.headers.age).toMatch(/^\d+$/);
  expect(r.headers['content-length']).toBe(String(Buffer.byteLength(body)));
  expect(r.headers['x-outrigger-error']).toBeUndefined();
}

function expectFresh(r: Res, body: string) {
  expect(r.status).toBe(200);
  expect(r.body).toBe(body);
  expect(r.headers['x-outrigger-fallback']).toBeUndefined();
  expect(r.headers['cache-status']).toBeUndefined();
}

const stale = (extra: Record<string, unknown> = {}, on = ['breaker-open', 'upstream-unavailable', 'timeout']) => ({ on, staleIfError: extra });

async function setup(route: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const ctl = await switchable();
  track(ctl.up);
  const px = track(await startProxy(oneRoute(ctl.up.url, { retry: NO_RETRY, ...route }, extra)));
  return { ctl, px };
}

describe('fallback.staleIfError', () => {
  it('serves an outage from the cache, then fresh data after recovery; what was stored before the outage is dropped once the breaker closes', async () => {
    const { ctl, px } = await setup({ breaker: { consecutiveFailures: 2, halfOpenAfter: '300ms' }, fallback: stale() });
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_served_total', { route: 'r1' })).toBe(0);
    expectFresh(await req(px.url, { path: '/a?page=1' }), 'v1 /a?page=1');
    expectFresh(await req(px.url, { path: '/b' }), 'v1 /b');
    await stored(px, 2);

    // The outage: connection resets, then the breaker opens (2 in a row) and fails fast.
    ctl.mode = 'reset';
    const first = await req(px.url, { path: '/a?page=1' });
    expectStale(first, 'v1 /a?page=1');
    expect(first.headers['content-type']).toBe('text/plain');
    expect(first.headers['x-outrigger-attempts']).toBe('1');
    expectStale(await req(px.url, { path: '/a?page=1' }), 'v1 /a?page=1');
    const open = await req(px.url, { path: '/a?page=1' });
    expectStale(open, 'v1 /a?page=1');
    expect(open.headers['x-outrigger-attempts']).toBeUndefined(); // the breaker answered, no upstream try
    // Another query string was never stored: with no static body the error passes through.
    const miss = await req(px.url, { path: '/a?page=2' });
    expect(miss.status).toBe(503);
    expect(miss.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_served_total', { route: 'r1' })).toBe(3);
    expect(await metricValue(px.metricsUrl, 'outrigger_fallbacks_total', { route: 'r1', trigger: 'upstream-unavailable' })).toBe(2);
    expect(await metricValue(px.metricsUrl, 'outrigger_fallbacks_total', { route: 'r1', trigger: 'breaker-open' })).toBe(1);

    // Recovery: the half-open probe closes the breaker and the client gets the new data.
    ctl.mode = 'up';
    ctl.version = 'v2';
    const fresh = await waitFor(
      async () => {
        const r = await req(px.url, { path: '/a?page=1' });
        return r.headers['x-outrigger-fallback'] === undefined ? r : null;
      },
      { interval: 50, what: 'the probe to close the breaker' },
    );
    expectFresh(fresh, 'v2 /a?page=1');

    // The next outage serves what was stored since the recovery, and nothing from before it.
    ctl.mode = 'reset';
    expectStale(await req(px.url, { path: '/a?page=1' }), 'v2 /a?page=1');
    const before = await req(px.url, { path: '/b' });
    expect(before.status).toBe(502);
    expect(before.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect(before.body).not.toContain('v1');
  });

  it('a miss gets the static fallback when a body is configured, with its trigger', async () => {
    const { ctl, px } = await setup({ breaker: { enabled: false }, fallback: { ...stale(), status: 203, body: 'static' } });
    expectFresh(await req(px.url, { path: '/a' }), 'v1 /a');
    await stored(px, 1);
    ctl.mode = 'reset';
    expectStale(await req(px.url, { path: '/a' }), 'v1 /a');
    const miss = await req(px.url, { path: '/other' });
    expect([miss.status, miss.body, miss.headers['x-outrigger-fallback']]).toEqual([203, 'static', 'upstream-unavailable']);
    expect(miss.headers['cache-status']).toBeUndefined();
    // A POST is never answered from the cache.
    const post = await req(px.url, { path: '/a', method: 'POST', body: 'x' });
    expect([post.status, post.body]).toEqual([203, 'static']);
  });

  it('a final 5xx is replaced only when 5xx is listed', async () => {
    const { ctl, px } = await setup({ breaker: { enabled: false }, fallback: stale({}, ['5xx']) });
    await req(px.url, { path: '/a' });
    await stored(px, 1);
    ctl.mode = '5xx';
    expectStale(await req(px.url, { path: '/a' }), 'v1 /a');
    const miss = await req(px.url, { path: '/b' });
    expect([miss.status, miss.body]).toEqual([503, 'down']);
    ctl.mode = 'reset';
    // upstream-unavailable is not listed here.
    expect((await req(px.url, { path: '/a' })).status).toBe(502);

    const other = await setup({ breaker: { enabled: false }, fallback: stale({}, ['upstream-unavailable']) });
    await req(other.px.url, { path: '/a' });
    await stored(other.px, 1);
    other.ctl.mode = '5xx';
    const passed = await req(other.px.url, { path: '/a' });
    expect([passed.status, passed.body, passed.headers['x-outrigger-fallback']]).toEqual([503, 'down', undefined]);
  });

  it('never stores a body that was cut, aborted by the client, read until close, or over maxEntryBytes', async () => {
    const { ctl, px } = await setup({ breaker: { enabled: false }, bodyTimeout: '2s', fallback: stale({ maxEntryBytes: '1KiB' }) });
    ctl.custom['/cut'] = (_rq, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('partial-');
      setTimeout(() => res.socket?.destroy(), 30);
    };
    ctl.custom['/until-close'] = (rq) => {
      rq.socket.end('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nall of it');
    };
    ctl.custom['/big'] = (_rq, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' }); // chunked: the size is learned as it streams
      res.write('x'.repeat(800));
      setTimeout(() => res.end('y'.repeat(800)), 10);
    };
    ctl.custom['/chunked'] = (_rq, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write('one,');
      setTimeout(() => res.end('two'), 10);
    };
    ctl.custom['/slow'] = (_rq, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '20' });
      res.write('0123456789');
      setTimeout(() => res.end('0123456789'), 500);
    };

    const cut = await req(px.url, { path: '/cut' });
    expect(cut.complete).toBe(false);
    const closeDelimited = await req(px.url, { path: '/until-close' });
    expect(closeDelimited.body).toBe('all of it');
    const big = await req(px.url, { path: '/big' });
    expect(big.body).toHaveLength(1600); // streamed through whole, only not kept
    expect((await req(px.url, { path: '/chunked' })).body).toBe('one,two');
    // The client leaves after the first bytes: the rest of the body never comes.
    await new Promise<void>((resolve) => {
      const r = request({ host: '127.0.0.1', port: new URL(px.url).port, path: '/slow', agent: false }, (res) => {
        res.once('data', () => {
          r.destroy();
          resolve();
        });
      });
      r.on('error', () => resolve());
      r.end();
    });
    await stored(px, 1); // /chunked only
    await sleep(600); // past the end /slow would have had
    expect(cacheOf(px).size).toBe(1);

    ctl.mode = 'reset';
    expectStale(await req(px.url, { path: '/chunked' }), 'one,two');
    for (const path of ['/cut', '/until-close', '/big', '/slow']) {
      const r = await req(px.url, { path });
      expect([path, r.status, r.headers['x-outrigger-fallback']]).toEqual([path, 502, undefined]);
    }
  });

  it('keeps Vary variants apart, and does not store a Vary outside the configured list, nor Vary: *', async () => {
    const { ctl, px } = await setup({ breaker: { enabled: false }, fallback: stale() });
    ctl.custom['/v'] = (rq, res) => {
      const body = `for ${rq.headers.accept ?? 'nothing'}`;
      res.writeHead(200, { vary: 'Accept', 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    ctl.headers['/cookie'] = { vary: 'Cookie' };
    ctl.headers['/star'] = { vary: '*' };
    await req(px.url, { path: '/v', headers: { accept: 'application/json' } });
    await req(px.url, { path: '/v', headers: { accept: 'text/html' } });
    await req(px.url, { path: '/cookie', headers: { cookie: 'a=1' } });
    await req(px.url, { path: '/star' });
    await stored(px, 2);
    await sleep(50);
    expect(cacheOf(px).size).toBe(2);

    ctl.mode = 'reset';
    const json = await req(px.url, { path: '/v', headers: { accept: 'application/json' } });
    expectStale(json, 'for application/json');
    expect(json.headers.vary).toBe('Accept');
    expectStale(await req(px.url, { path: '/v', headers: { accept: 'text/html' } }), 'for text/html');
    expect((await req(px.url, { path: '/v', headers: { accept: 'image/png' } })).status).toBe(502);
    expect((await req(px.url, { path: '/v' })).status).toBe(502);
    expect((await req(px.url, { path: '/cookie', headers: { cookie: 'a=1' } })).status).toBe(502);
    expect((await req(px.url, { path: '/star' })).status).toBe(502);
  });

  it('respects no-store, private, Set-Cookie and an authenticated request', async () => {
    const { ctl, px } = await setup({ breaker: { enabled: false }, fallback: stale() });
    ctl.headers['/no-store'] = { 'cache-control': 'no-store' };
    ctl.headers['/private'] = { 'cache-control': 'private, max-age=60' };
    ctl.headers['/cookie'] = { 'set-cookie': 'sid=secret' };
    ctl.headers['/public'] = { 'cache-control': 'public, max-age=60' };
    await req(px.url, { path: '/no-store' });
    await req(px.url, { path: '/private' });
    await req(px.url, { path: '/cookie' });
    await req(px.url, { path: '/auth', headers: { authorization: 'Bearer a' } });
    await req(px.url, { path: '/req-no-store', headers: { 'cache-control': 'no-store' } });
    await req(px.url, { path: '/public', headers: { authorization: 'Bearer a' } });
    await stored(px, 1);
    await sleep(50);
    expect(cacheOf(px).size).toBe(1);

    ctl.mode = 'reset';
    for (const path of ['/no-store', '/private', '/cookie', '/auth', '/req-no-store']) {
      expect([path, (await req(px.url, { path })).status]).toEqual([path, 502]);
    }
    expectStale(await req(px.url, { path: '/public' }), 'v1 /public');
  });

  it('serves an entry only while younger than maxAge, with a growing Age', async () => {
    const { ctl, px } = await setup({ breaker: { enabled: false }, fallback: stale({ maxAge: '1500ms' }) });
    ctl.headers['/aged'] = { age: '1' }; // an upstream cache already held it for a second
    await req(px.url, { path: '/a' });
    await req(px.url, { path: '/aged' });
    await stored(px, 2);
    ctl.mode = 'reset';
    const r = await req(px.url, { path: '/a' });
    expectStale(r, 'v1 /a');
    expect(r.headers.age).toBe('0');
    expect((await req(px.url, { path: '/aged' })).headers.age).toBe('1');
    await sleep(600);
    expect((await req(px.url, { path: '/aged' })).status).toBe(502); // 1s + 0.6s > 1.5s
    await sleep(500);
    expect((await req(px.url, { path: '/a' })).headers.age).toBe('1');
    await sleep(500);
    expect((await req(px.url, { path: '/a' })).status).toBe(502);
    expect(cacheOf(px).size).toBe(0);
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_cache_bytes', {})).toBe(0);
  });

  it("caps maxAge at the upstream's stale-if-error (after its freshness lifetime)", async () => {
    const { ctl, px } = await setup({ breaker: { enabled: false }, fallback: stale({ maxAge: '5m' }) });
    ctl.headers['/capped'] = { 'cache-control': 'max-age=0, stale-if-error=1' };
    await req(px.url, { path: '/capped' });
    await req(px.url, { path: '/plain' });
    await stored(px, 2);
    ctl.mode = 'reset';
    expectStale(await req(px.url, { path: '/capped' }), 'v1 /capped');
    await sleep(1100);
    expect((await req(px.url, { path: '/capped' })).status).toBe(502);
    expectStale(await req(px.url, { path: '/plain' }), 'v1 /plain');
  });

  it('never serves after a reset what was stored before or during an isolation', async () => {
    const { ctl, px } = await setup({ breaker: { consecutiveFailures: 5, halfOpenAfter: '1m' }, fallback: stale() });
    ctl.custom['/slow'] = (_rq, res) => {
      setTimeout(() => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '9' });
        res.end('slow body');
      }, 300);
    };
    await req(px.url, { path: '/pre' });
    await stored(px, 1);
    // A request already past the breaker when the operator isolates it completes, and is stored.
    const inFlight = req(px.url, { path: '/slow' });
    await waitFor(() => ctl.up.seen.some((s) => s.url === '/slow'));
    expect((await fetch(`${px.adminUrl}/breakers/r1/isolate`, { method: 'POST' })).status).toBe(200);
    expectFresh(await inFlight, 'slow body');
    await stored(px, 2);

    // While isolated, both are served in place of the breaker's refusal.
    expectStale(await req(px.url, { path: '/pre' }), 'v1 /pre');
    expectStale(await req(px.url, { path: '/slow' }), 'slow body');

    // The reset closes the breaker (a new epoch): neither is served again.
    expect((await fetch(`${px.adminUrl}/breakers/r1/reset`, { method: 'POST' })).status).toBe(200);
    ctl.mode = 'reset';
    for (const path of ['/pre', '/slow']) {
      const r = await req(px.url, { path });
      expect([path, r.status, r.headers['x-outrigger-fallback']]).toEqual([path, 502, undefined]);
    }
    expect(cacheOf(px).size).toBe(0);
  });

  it('stays within maxEntries and maxBytes over 10,000 distinct URLs, and the gauge follows', async () => {
    const { px } = await setup({ breaker: { enabled: false }, fallback: stale({ maxEntries: 500, maxBytes: '64KiB' }) });
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const port = new URL(px.url).port;
    const get = (path: string) =>
      new Promise<void>((resolve, reject) => {
        const r = request({ host: '127.0.0.1', port, path, agent }, (res) => {
          res.resume();
          res.on('end', resolve);
        });
        r.on('error', reject);
        r.end();
      });
    let peakBytes = 0;
    let peakEntries = 0;
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < 10_000) {
          await get(`/item/${next++}`);
          const c = cacheOf(px);
          peakBytes = Math.max(peakBytes, c.bytes);
          peakEntries = Math.max(peakEntries, c.size);
        }
      }),
    );
    agent.destroy();
    const c = cacheOf(px);
    expect(peakBytes).toBeLessThanOrEqual(64 * 1024);
    expect(peakEntries).toBeLessThanOrEqual(500);
    // Bytes bound here (about 200 bytes an entry): the store is close to full, with the newest URLs.
    expect(c.bytes).toBeGreaterThan(60 * 1024);
    expect(c.size).toBeLessThan(500);
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_cache_bytes', {})).toBe(c.bytes);
  }, 60_000);

  it('keeps its entries over a reload that leaves its settings alone, and drops them when they change', async () => {
    const ctl = await switchable();
    track(ctl.up);
    const cfg = (sie: Record<string, unknown>) => ({
      upstreams: { up: { endpoints: [ctl.up.url] } },
      routes: [
        { name: 'plain', match: { pathPrefix: '/plain' }, upstream: 'up' },
        { name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', retry: NO_RETRY, breaker: { enabled: false }, fallback: stale(sie) },
      ],
    });
    const px = track(await startProxy(cfg({})));
    const cacheOf = (p: TestProxy) => (p.app.state.runtime.routes[1]?.stale as { cache: StaleCache }).cache;
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_served_total', { route: 'r1' })).toBe(0);
    await req(px.url, { path: '/a' });
    await waitFor(() => cacheOf(px).size === 1);
    const bytes = cacheOf(px).bytes;
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_cache_bytes', {})).toBe(bytes);
    // Routes without staleIfError have no stale series.
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_served_total', { route: 'plain' })).toBeUndefined();

    px.writeConfig({ ...cfg({}), log: { level: 'warn' } });
    expect(await px.app.reload()).toEqual([]);
    expect(cacheOf(px).size).toBe(1);
    px.writeConfig(cfg({ maxAge: '1m' }));
    expect(await px.app.reload()).toEqual([]);
    expect(cacheOf(px).size).toBe(0);
    await waitFor(async () => (await metricValue(px.metricsUrl, 'outrigger_stale_cache_bytes', {})) === 0, { what: 'the gauge to drop the old cache' });
  });
});
