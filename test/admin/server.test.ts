import { PassThrough } from 'node:stream';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { createAdminHandler, type AdminState } from '../../src/admin/server.js';
import type { ProxyState } from '../../src/proxy/http.js';
import { ok, startUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();

const getJson = async (url: string) => {
  const u = new URL(url);
  const r = await req(u.origin, { path: u.pathname });
  return { status: r.status, headers: r.headers, json: JSON.parse(r.body) as Record<string, unknown> & unknown[] };
};
const post = (px: TestProxy, path: string, headers: Record<string, string> = {}) => req(px.adminUrl, { method: 'POST', path, headers });

describe('admin probes and documents', () => {
  it('/livez and /healthz are 200 and /readyz is 200 once listening', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    for (const p of ['/livez', '/healthz']) {
      const r = await getJson(`${px.adminUrl}${p}`);
      expect(r.status).toBe(200);
      expect(r.json).toEqual({ status: 'alive' });
    }
    const ready = await getJson(`${px.adminUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready' });
    expect(ready.headers['cache-control']).toBe('no-store');
  });

  it('/readyz is 503 while draining; /livez stays 200', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    px.app.state.draining = true;
    const ready = await getJson(`${px.adminUrl}/readyz`);
    expect(ready.status).toBe(503);
    expect(ready.json).toEqual({ status: 'draining' });
    expect((await getJson(`${px.adminUrl}/livez`)).status).toBe(200);
    px.app.state.draining = false;
  });

  it('/health has the documented shape, and /breakers the same list', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(
      await startProxy({
        upstreams: { up: { endpoints: [up.url] } },
        routes: [
          { name: 'a', match: { pathPrefix: '/a' }, upstream: 'up', critical: true },
          { name: 'b', match: { pathPrefix: '/b' }, upstream: 'up', breaker: { name: 'shared' } },
          { name: 'c', match: { pathPrefix: '/c' }, upstream: 'up', breaker: { name: 'shared' } },
        ],
      }),
    );
    const h = await getJson(`${px.adminUrl}/health`);
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({
      status: 'healthy',
      breakers: [
        { name: 'a', routes: ['a'], state: 'closed', since: expect.any(String), consecutiveFailures: 0, opens: 0, retryAfterSeconds: null },
        { name: 'shared', routes: ['b', 'c'], state: 'closed', since: expect.any(String), consecutiveFailures: 0, opens: 0, retryAfterSeconds: null },
      ],
      criticalOpen: [],
      config: { hash: expect.stringMatching(/^[0-9a-f]{64}$/), loadedAt: expect.any(String) },
    });
    const health = h.json as unknown as { breakers: Array<{ since: string }>; config: { loadedAt: string } };
    expect(Number.isNaN(Date.parse(health.breakers[0]!.since))).toBe(false);
    expect(Number.isNaN(Date.parse(health.config.loadedAt))).toBe(false);
    const b = await getJson(`${px.adminUrl}/breakers`);
    expect(b.json).toEqual(health.breakers);
  });

  it('/config returns the effective config with defaults applied', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1', { timeout: '2s' })));
    const c = (await getJson(`${px.adminUrl}/config`)).json as unknown as {
      routes: Array<{ name: string; timeout: number; bodyTimeout: number; retry: { attempts: number; backoff: { base: number } }; breaker: { consecutiveFailures: number; name: string } }>;
      upstreams: Record<string, { connectTimeout: number }>;
      defaults: { timeout: number };
    };
    expect(c.routes[0]).toMatchObject({ name: 'r1', timeout: 2000, bodyTimeout: 30_000, retry: { attempts: 2, backoff: { base: 25 } }, breaker: { name: 'r1', consecutiveFailures: 5 } });
    expect(c.upstreams.up!.connectTimeout).toBe(1000);
    expect(c.defaults.timeout).toBe(15_000);
  });

  it('/config shows each route\'s effective policy, its presets and the source of every value', async () => {
    const px = track(
      await startProxy({
        upstreams: { up: { endpoints: ['http://127.0.0.1:1'] } },
        defaults: { timeout: '10s', retry: { backoff: { max: '1s' } } },
        presets: { payments: { use: ['critical'], timeout: '3s', fallback: { on: ['breaker-open'], status: 503, body: 'later' } } },
        routes: [
          { name: 'checkout', match: { pathPrefix: '/checkout' }, upstream: 'up', use: ['transient', 'payments'], retry: { attempts: 1 } },
          { name: 'plain', match: { pathPrefix: '/' }, upstream: 'up' },
        ],
      }),
    );
    type Route = { name: string; timeout: number; critical: boolean; use: string[]; sources: Record<string, string>; retry: { attempts: number; backoff: { base: number; max: number } }; breaker: { name: string; failureRate?: unknown }; fallback?: { status: number; body: string } };
    const c = (await getJson(`${px.adminUrl}/config`)).json as unknown as { routes: Route[]; defaults: { timeout: number }; presets: Record<string, unknown> };
    const [checkout, plain] = c.routes as [Route, Route];
    // The effective values, in the same shape as before presets.
    expect(checkout).toMatchObject({ name: 'checkout', timeout: 3000, critical: true, retry: { attempts: 1, backoff: { base: 10, max: 100 } }, breaker: { name: 'checkout', failureRate: { threshold: 0.5 } }, fallback: { status: 503, body: 'later' } });
    expect(checkout.use).toEqual(['transient', 'payments']);
    expect(checkout.sources).toMatchObject({
      timeout: 'preset:payments',
      critical: 'preset:critical',
      'retry.attempts': 'route',
      'retry.backoff.base': 'preset:transient',
      'retry.backoff.max': 'preset:transient',
      'retry.on': 'preset:critical',
      'breaker.failureRate': 'preset:critical',
      'breaker.name': 'builtin',
      fallback: 'preset:payments',
      bodyTimeout: 'builtin',
    });
    expect(plain).toMatchObject({ timeout: 10_000, critical: false, use: [], retry: { backoff: { max: 1000 } } });
    expect(plain.sources).toMatchObject({ timeout: 'defaults', 'retry.backoff.max': 'defaults', 'retry.backoff.base': 'builtin', critical: 'builtin' });
    expect(Object.values(plain.sources).every((v) => v === 'builtin' || v === 'defaults')).toBe(true);
    expect(Object.keys(c.presets)).toEqual(['transient', 'critical', 'background', 'no-retry', 'payments']);
    expect(c.defaults.timeout).toBe(10_000);

    // critical: true from a preset is what the runtime uses: the breaker is listed as critical.
    expect((await post(px, '/breakers/checkout/isolate')).status).toBe(200);
    expect(((await getJson(`${px.adminUrl}/health`)).json as unknown as { criticalOpen: string[] }).criticalOpen).toEqual(['checkout']);
  });

  it('logs config warnings at start-up, and /config after a reload shows the new sources', async () => {
    const cfg = { upstreams: { up: { endpoints: ['http://127.0.0.1:1'] } }, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', use: ['no-retry', 'transient'] }] };
    const px = track(await startProxy(cfg));
    const warned = px.logs.find((l) => l.event === 'config_warnings');
    expect(warned?.level).toBe('warn');
    expect(warned?.warnings).toEqual([expect.stringMatching(/^routes\[0\]\.use\[1\]: presets\.transient\.retry\.attempts \(3\) overrides presets\.no-retry\.retry\.attempts \(0\)/)]);
    const sources = async () => ((await getJson(`${px.adminUrl}/config`)).json as unknown as { routes: Array<{ sources: Record<string, string> }> }).routes[0]!.sources;
    expect((await sources())['retry.attempts']).toBe('preset:transient');
    px.writeConfig({ ...cfg, routes: [{ ...cfg.routes[0], use: ['transient', 'no-retry'] }] });
    expect((await post(px, '/reload')).status).toBe(200);
    expect((await sources())['retry.attempts']).toBe('preset:no-retry');
  });

  it('answers 404 for unknown paths and 405 for other methods', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    expect((await req(px.adminUrl, { path: '/nope' })).status).toBe(404);
    const r = await req(px.adminUrl, { method: 'DELETE', path: '/breakers/r1' });
    expect(r.status).toBe(405);
    expect(r.headers.allow).toBe('GET, HEAD, POST');
    expect((await post(px, '/breakers/nope/isolate')).status).toBe(404);
    expect((await post(px, '/breakers/r1/explode')).status).toBe(404);
  });
  it('answers 400 for a malformed breaker name instead of crashing', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    const r = await post(px, '/breakers/%E0%A4%A/isolate');
    expect(r.status).toBe(400);
    expect((await req(px.adminUrl, { path: '/livez' })).status).toBe(200);
  });

  it('decodes a percent-encoded breaker name', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1', { breaker: { name: 'my.breaker' } })));
    const r = await post(px, '/breakers/my%2Ebreaker/isolate');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ name: 'my.breaker', state: 'isolated' });
  });
});

describe('isolate and reset', () => {
  it('without a token: accepted from loopback; isolated shows in /health, fails fast, reset closes', async () => {
    const up = track(await startUpstream(ok('fine')));
    const px = track(await startProxy(oneRoute(up.url, { critical: true })));
    const iso = await post(px, '/breakers/r1/isolate');
    expect(iso.status).toBe(200);
    expect(JSON.parse(iso.body)).toMatchObject({ name: 'r1', state: 'isolated' });

    const h = (await getJson(`${px.adminUrl}/health`)).json as unknown as { status: string; breakers: Array<{ state: string }>; criticalOpen: string[] };
    expect(h.status).toBe('degraded');
    expect(h.breakers[0]!.state).toBe('isolated');
    expect(h.criticalOpen).toEqual(['r1']);

    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(503);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(r.headers['retry-after']).toBeDefined();
    expect(up.seen).toHaveLength(0);

    const reset = await post(px, '/breakers/r1/reset');
    expect(reset.status).toBe(200);
    expect(JSON.parse(reset.body)).toMatchObject({ state: 'closed' });
    const h2 = (await getJson(`${px.adminUrl}/health`)).json as unknown as { status: string; criticalOpen: string[] };
    expect(h2.status).toBe('healthy');
    expect(h2.criticalOpen).toEqual([]);
    expect((await req(px.url, { path: '/a' })).body).toBe('fine');
    expect(px.logs.some((l) => l.level === 'warn' && l.breaker === 'r1' && l.action === 'isolate')).toBe(true);
  });

  it('with OUTRIGGER_ADMIN_TOKEN: needs the bearer token, 401 otherwise', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url), { env: { OUTRIGGER_ADMIN_TOKEN: 't0ken' } }));
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 'Bearer t0ke' }, { authorization: 'Basic t0ken' }, { authorization: 't0ken' }] as Array<Record<string, string>>) {
      const r = await post(px, '/breakers/r1/isolate', headers);
      expect(r.status).toBe(401);
      expect(r.headers['www-authenticate']).toBe('Bearer');
      expect(JSON.parse(r.body).error.code).toBe('UNAUTHORIZED');
    }
    expect((await getJson(`${px.adminUrl}/breakers`)).json[0]).toMatchObject({ state: 'closed' });
    expect((await post(px, '/breakers/r1/isolate', { authorization: 'Bearer t0ken' })).status).toBe(200);
    expect((await getJson(`${px.adminUrl}/breakers`)).json[0]).toMatchObject({ state: 'isolated' });
    expect((await post(px, '/breakers/r1/reset', { authorization: 'Bearer wrong' })).status).toBe(401);
    expect((await getJson(`${px.adminUrl}/breakers`)).json[0]).toMatchObject({ state: 'isolated' });
    expect((await post(px, '/breakers/r1/reset', { authorization: 'bearer t0ken' })).status).toBe(200);
    expect((await getJson(`${px.adminUrl}/breakers`)).json[0]).toMatchObject({ state: 'closed' });
    // Reads stay open: probes must not need the token.
    expect((await req(px.adminUrl, { path: '/health' })).status).toBe(200);
  });

  it('are never accepted on the proxy port: the request is just proxied', async () => {
    const up = track(await startUpstream(ok('proxied')));
    const px = track(await startProxy(oneRoute(up.url)));
    const r = await req(px.url, { method: 'POST', path: '/breakers/r1/isolate' });
    expect(r.body).toBe('proxied');
    expect(up.seen[0]).toMatchObject({ method: 'POST', url: '/breakers/r1/isolate' });
    expect((await getJson(`${px.adminUrl}/breakers`)).json[0]).toMatchObject({ state: 'closed' });
  });

  it('on the proxy port with no matching route the answer is NO_ROUTE', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url, { match: { pathPrefix: '/api' } })));
    const r = await req(px.url, { method: 'POST', path: '/breakers/r1/isolate' });
    expect(r.status).toBe(404);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_NO_ROUTE');
    expect((await getJson(`${px.adminUrl}/breakers`)).json[0]).toMatchObject({ state: 'closed' });
  });

  it('a breaker opened by failures shows as open, degraded, and in criticalOpen', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { critical: true, retry: { attempts: 0 }, breaker: { consecutiveFailures: 1, halfOpenAfter: '30s' } })));
    await req(px.url, { path: '/a' });
    const h = (await getJson(`${px.adminUrl}/health`)).json as unknown as { status: string; breakers: Array<Record<string, unknown>>; criticalOpen: string[] };
    expect(h.status).toBe('degraded');
    expect(h.breakers[0]).toMatchObject({ state: 'open', opens: 1, consecutiveFailures: 1, retryAfterSeconds: 30 });
    expect(h.criticalOpen).toEqual(['r1']);
  });
});

describe('admin authorization (unit)', () => {
  // A non-loopback caller cannot be made on 127.0.0.1, so drive the handler directly.
  function call(remoteAddress: string, token: string | undefined, headers: Record<string, string> = {}, url = '/breakers/r1/isolate', method = 'POST', ready = true) {
    const isolated: string[] = [];
    const breaker = { isolate: () => isolated.push('isolate'), reset: () => isolated.push('reset'), snapshot: () => ({ name: 'r1' }) };
    const state = {
      proxy: { runtime: { breaker: (n: string) => (n === 'r1' ? breaker : undefined) }, log: { warn: () => undefined } } as unknown as ProxyState,
      ready,
      token,
      lastReloadError: null,
      reload: () => Promise.resolve([]),
    } as AdminState;
    const request = Object.assign(new PassThrough(), { url, method, headers, socket: { remoteAddress } }) as unknown as IncomingMessage;
    let status = 0;
    const response = { writeHead: (s: number) => (status = s), end: () => undefined } as unknown as ServerResponse;
    createAdminHandler(state)(request, response);
    return { status, isolated };
  }

  it('without a token refuses non-loopback callers with 403', () => {
    expect(call('10.1.2.3', undefined)).toEqual({ status: 403, isolated: [] });
    expect(call('::ffff:10.1.2.3', undefined)).toEqual({ status: 403, isolated: [] });
    expect(call('127.0.0.1', undefined)).toEqual({ status: 200, isolated: ['isolate'] });
    expect(call('::1', undefined)).toEqual({ status: 200, isolated: ['isolate'] });
    expect(call('::ffff:127.0.0.1', undefined)).toEqual({ status: 200, isolated: ['isolate'] });
  });

  it('/readyz is 503 "starting" until the listeners are up', () => {
    expect(call('127.0.0.1', undefined, {}, '/readyz', 'GET', false).status).toBe(503);
    expect(call('127.0.0.1', undefined, {}, '/livez', 'GET', false).status).toBe(200);
  });

  it('with a token accepts any address that presents it, and loopback only with it', () => {
    expect(call('10.1.2.3', 'tok', { authorization: 'Bearer tok' })).toEqual({ status: 200, isolated: ['isolate'] });
    expect(call('127.0.0.1', 'tok')).toEqual({ status: 401, isolated: [] });
  });
});
