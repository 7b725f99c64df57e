import { describe, expect, it } from 'vitest';
import { loadConfigText, type EffectiveRoute } from '../../src/config/load.js';
import { Router, compileMatcher, parseTarget } from '../../src/proxy/router.js';
import { ok, startUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();

function routes(yaml: string): EffectiveRoute[] {
  return loadConfigText(`upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }\nroutes:\n${yaml}`, '/tmp/x.yaml').config.routes as EffectiveRoute[];
}

function router(yaml: string) {
  const rs = routes(yaml);
  const r = new Router(rs.map((x) => compileMatcher(x, x.name)));
  return (method: string, url: string, host?: string, headers: Record<string, string | string[]> = {}) => {
    const t = parseTarget(url, host);
    if (t === null) throw new Error(`bad target ${url}`);
    return r.match(method, t, headers);
  };
}

describe('parseTarget', () => {
  it('reads origin-form with the Host header', () => {
    expect(parseTarget('/v1/items?x=1', 'Catalog:8080')).toEqual({ host: 'catalog', authority: 'Catalog:8080', path: '/v1/items', query: '?x=1' });
    expect(parseTarget('/', undefined)).toEqual({ host: '', authority: '', path: '/', query: '' });
  });

  it('reads absolute-form targets (HTTP_PROXY clients) and ignores the Host header', () => {
    expect(parseTarget('http://catalog.svc:8080/v1/items?x=1', 'other')).toEqual({ host: 'catalog.svc', authority: 'catalog.svc:8080', path: '/v1/items', query: '?x=1' });
    expect(parseTarget('http://catalog', undefined)).toEqual({ host: 'catalog', authority: 'catalog', path: '/', query: '' });
    expect(parseTarget('http://catalog?q=1', undefined)).toEqual({ host: 'catalog', authority: 'catalog', path: '/', query: '?q=1' });
    expect(parseTarget('http://[::1]:80/x', undefined)).toMatchObject({ host: '::1', authority: '[::1]:80', path: '/x' });
  });

  it('refuses targets a plain HTTP proxy cannot serve', () => {
    expect(parseTarget('https://x/', undefined)).toBeNull();
    expect(parseTarget('*', undefined)).toBeNull();
    expect(parseTarget('example.com:443', undefined)).toBeNull();
  });
});

describe('route matching', () => {
  it('pathPrefix matches whole segments', () => {
    const m = router('  - { name: items, upstream: a, match: { pathPrefix: /v1/items } }\n');
    expect(m('GET', '/v1/items')).toBe('items');
    expect(m('GET', '/v1/items/42')).toBe('items');
    expect(m('GET', '/v1/items?x')).toBe('items');
    expect(m('GET', '/v1/itemsfoo')).toBeNull();
    expect(m('GET', '/v1')).toBeNull();
  });

  it('path is exact; pathRegex is anchored', () => {
    const m = router('  - { name: exact, upstream: a, match: { path: /health } }\n  - { name: re, upstream: a, match: { pathRegex: "/users/[0-9]+" } }\n');
    expect(m('GET', '/health')).toBe('exact');
    expect(m('GET', '/health/x')).toBeNull();
    expect(m('GET', '/users/12')).toBe('re');
    expect(m('GET', '/users/12/x')).toBeNull();
    expect(m('GET', '/x/users/12')).toBeNull();
  });

  it('host matches without port, with port, by wildcard, case-insensitively', () => {
    const m = router(
      [
        '  - { name: withport, upstream: a, match: { host: "catalog:8080" } }',
        '  - { name: plain, upstream: a, match: { host: Catalog } }',
        '  - { name: wild, upstream: a, match: { host: "*.shop.svc" } }',
        '  - { name: any, upstream: a, match: { host: "*", pathPrefix: /any } }',
      ].join('\n') + '\n',
    );
    expect(m('GET', '/', 'catalog:8080')).toBe('withport');
    expect(m('GET', '/', 'CATALOG:9090')).toBe('plain');
    expect(m('GET', '/', 'catalog')).toBe('plain');
    expect(m('GET', '/', 'cart.shop.svc')).toBe('wild');
    expect(m('GET', '/', 'shop.svc')).toBeNull();
    expect(m('GET', '/any', 'whatever')).toBe('any');
    expect(m('GET', 'http://catalog/x', 'not-catalog')).toBe('plain');
  });

  it('methods restrict the match', () => {
    const m = router('  - { name: reads, upstream: a, match: { methods: [GET, HEAD] } }\n  - { name: rest, upstream: a }\n');
    expect(m('GET', '/')).toBe('reads');
    expect(m('HEAD', '/')).toBe('reads');
    expect(m('POST', '/')).toBe('rest');
  });

  it('headers match by string, exact, prefix, regex and present', () => {
    const m = router(
      [
        '  - { name: s, upstream: a, match: { headers: { x-env: canary } } }',
        '  - { name: e, upstream: a, match: { headers: { X-Exact: { exact: v1 } } } }',
        '  - { name: p, upstream: a, match: { headers: { x-prefix: { prefix: "Bearer " } } } }',
        '  - { name: r, upstream: a, match: { headers: { x-re: { regex: "v[0-9]" } } } }',
        '  - { name: yes, upstream: a, match: { headers: { x-flag: { present: true } } } }',
        '  - { name: no, upstream: a, match: { pathPrefix: /no, headers: { x-flag: { present: false } } } }',
      ].join('\n') + '\n',
    );
    expect(m('GET', '/', '', { 'x-env': 'canary' })).toBe('s');
    expect(m('GET', '/', '', { 'x-env': 'canary2' })).toBeNull();
    expect(m('GET', '/', '', { 'x-exact': 'v1' })).toBe('e');
    expect(m('GET', '/', '', { 'x-prefix': 'Bearer abc' })).toBe('p');
    expect(m('GET', '/', '', { 'x-re': 'v7' })).toBe('r');
    expect(m('GET', '/', '', { 'x-re': 'v77' })).toBeNull();
    expect(m('GET', '/', '', { 'x-flag': '' })).toBe('yes');
    expect(m('GET', '/no', '', {})).toBe('no');
  });

  it('first match wins', () => {
    const m = router('  - { name: first, upstream: a, match: { pathPrefix: /a } }\n  - { name: second, upstream: a, match: { pathPrefix: /a/b } }\n  - { name: catchall, upstream: a }\n');
    expect(m('GET', '/a/b')).toBe('first');
    expect(m('GET', '/z')).toBe('catchall');
  });
});

describe('routing through the proxy', () => {
  it('routes by Host, absolute-form targets included, and answers NO_ROUTE otherwise', async () => {
    const cat = track(await startUpstream(ok('catalog')));
    const cart = track(await startUpstream(ok('cart')));
    const px = track(
      await startProxy({
        upstreams: { cat: { endpoints: [cat.url] }, cart: { endpoints: [cart.url] } },
        routes: [
          { name: 'catalog', match: { host: 'catalog.local' }, upstream: 'cat' },
          { name: 'cart', match: { host: 'cart.local' }, upstream: 'cart' },
        ],
      }),
    );
    expect((await req(px.url, { path: '/x', headers: { host: 'catalog.local' } })).body).toBe('catalog');
    expect((await req(px.url, { path: '/x', headers: { host: 'cart.local:80' } })).body).toBe('cart');
    // An HTTP_PROXY client sends Host equal to the target's authority; one that disagrees is refused (issue 9).
    const abs = await req(px.url, { path: 'http://cart.local/v1/cart?user=7', headers: { host: 'cart.local' } });
    expect(abs.body).toBe('cart');
    const mismatch = await req(px.url, { path: 'http://cart.local/v1/cart', headers: { host: 'catalog.local' } });
    expect(mismatch.status).toBe(400);
    expect(cart.seen.at(-1)!.url).toBe('/v1/cart?user=7');
    expect(cart.seen.at(-1)!.headers.host).toBe(`127.0.0.1:${cart.port}`);
    expect(cart.seen.at(-1)!.headers['x-forwarded-host']).toBe('cart.local');

    const none = await req(px.url, { path: '/x', headers: { host: 'unknown.local' } });
    expect(none.status).toBe(404);
    expect(none.headers['x-outrigger-error']).toBe('OUTRIGGER_NO_ROUTE');
    expect(none.headers['content-type']).toBe('application/json');
    expect(JSON.parse(none.body)).toEqual({ error: { code: 'OUTRIGGER_NO_ROUTE', message: expect.stringContaining('unknown.local'), route: null, attempts: 0 } });
  });

  it('rewrites the path prefix and keeps the query', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url, { match: { pathPrefix: '/v1/items' }, rewritePrefix: '/items' })));
    await req(px.url, { path: '/v1/items/42?q=1' });
    await req(px.url, { path: '/v1/items' });
    await req(px.url, { path: '/v1/items?x=y' });
    expect(up.seen.map((s) => s.url)).toEqual(['/items/42?q=1', '/items', '/items?x=y']);
  });

  it('rewrites to / and from a trailing-slash prefix', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(
      await startProxy({
        upstreams: { up: { endpoints: [up.url] } },
        routes: [
          { name: 'strip', match: { pathPrefix: '/api/' }, rewritePrefix: '/', upstream: 'up' },
          { name: 'exact', match: { path: '/old' }, rewritePrefix: '/new', upstream: 'up' },
        ],
      }),
    );
    await req(px.url, { path: '/api/users/1' });
    await req(px.url, { path: '/api' });
    await req(px.url, { path: '/old?a=1' });
    expect(up.seen.map((s) => s.url)).toEqual(['/users/1', '/', '/new?a=1']);
  });

  it('routes by method and header through the proxy', async () => {
    const a = track(await startUpstream(ok('canary')));
    const b = track(await startUpstream(ok('stable')));
    const px = track(
      await startProxy({
        upstreams: { a: { endpoints: [a.url] }, b: { endpoints: [b.url] } },
        routes: [
          { name: 'canary', match: { headers: { 'x-canary': 'true' }, methods: ['GET'] }, upstream: 'a' },
          { name: 'stable', match: {}, upstream: 'b' },
        ],
      }),
    );
    expect((await req(px.url, { path: '/', headers: { 'x-canary': 'true' } })).body).toBe('canary');
    expect((await req(px.url, { method: 'POST', path: '/', headers: { 'x-canary': 'true' } })).body).toBe('stable');
    expect((await req(px.url, { path: '/' })).body).toBe('stable');
  });

  it('answers 400 OUTRIGGER_BAD_REQUEST for targets it cannot serve', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    const r = await req(px.url, { path: 'https://secure.example/x' });
    expect(r.status).toBe(400);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_BAD_REQUEST');
    expect(up.seen).toHaveLength(0);
  });
});
