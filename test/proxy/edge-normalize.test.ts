// Issue 9: routes are matched on the normalized path, and the upstream gets that path.
import { describe, expect, it } from 'vitest';
import { ok, startUpstream } from '../helpers/upstream.js';
import { startProxy } from '../helpers/proxy.js';
import { rawGet } from '../helpers/raw.js';
import { useCleanup } from '../helpers/cleanup.js';
import { normalizePath } from '../../src/proxy/normalize-path.js';

const track = useCleanup();

const TRICKS = [
  '/pay',
  '/x/../pay',
  '/x/%2e%2e/pay',
  '/x/%2E%2E/pay',
  '/x/.%2e/pay',
  '/./pay',
  '/%2e/pay',
  '//pay',
  '///pay',
  '/%70ay',
  '/%70%61%79',
  '/x/..;a=b/pay',
  '/x/%2e%2e;a=b/pay',
  '/x%2F..%2Fpay',
  '/x%2f..%2fpay',
  '/x%5C..%5Cpay',
  '/x\\..\\pay',
  '/x/..%2fpay',
  '/pay/.',
  '/x/y/../../pay',
  'http://app.local/x/../pay',
  '/x/../pay#frag',
  '/x/%2e%2e%2fpay',
  '/x/..%00/pay',
];

/** Whether a path an upstream received resolves to /pay (or under it), read the most lenient way. */
function resolvesToPay(url: string): boolean {
  const path = url.split('?')[0] as string;
  const r = normalizePath(path.replaceAll('\\', '/').replace(/%5c/gi, '/').replace(/%2f/gi, '/'), { normalizePath: true, mergeSlashes: true, escapedSlashes: 'unescape' });
  const p = r.ok ? r.path : path;
  return p === '/pay' || p.startsWith('/pay/');
}

describe('route bypass through path tricks', () => {
  it('no encoding trick reaches the catch-all upstream as a path that resolves to /pay', async () => {
    const pay = track(await startUpstream(ok('pay')));
    const other = track(await startUpstream(ok('other')));
    const px = track(
      await startProxy({
        upstreams: { pay: { endpoints: [pay.url] }, other: { endpoints: [other.url] } },
        routes: [
          { name: 'pay', match: { pathPrefix: '/pay' }, upstream: 'pay' },
          { name: 'all', match: { pathPrefix: '/' }, upstream: 'other' },
        ],
      }),
    );
    const port = px.app.proxy.port;
    for (const t of TRICKS) {
      const r = await rawGet(port, t);
      expect([200, 400], t).toContain(r.status);
      if (r.status === 200) expect(r.text.endsWith('pay'), t).toBe(true);
    }
    expect(other.seen.filter((s) => resolvesToPay(s.url))).toEqual([]);
    // The pay upstream got the normalized path, never the raw one.
    expect(pay.seen.map((s) => s.url).every((u) => u === '/pay' || u === '/pay/')).toBe(true);
    expect(pay.seen.length).toBeGreaterThan(5);
  });

  it('keeps the upstream path under rewritePrefix and sends the normalized path', async () => {
    const up = track(await startUpstream(ok('a')));
    const px = track(
      await startProxy({
        upstreams: { a: { endpoints: [up.url] } },
        routes: [{ name: 'a', match: { pathPrefix: '/svc-a' }, upstream: 'a', rewritePrefix: '/internal/svc-a' }],
      }),
    );
    const port = px.app.proxy.port;
    expect((await rawGet(port, '/svc-a/../../secret')).status).toBe(400);
    expect((await rawGet(port, '/svc-a/%2e%2e/%2e%2e/secret')).status).toBe(400);
    expect((await rawGet(port, '/svc-a/../secret')).status).toBe(404);
    const r = await rawGet(port, '/svc-a//x/./y/../%7Ez?q=%2e%2e');
    expect(r.status).toBe(200);
    expect(up.seen.map((s) => s.url)).toEqual(['/internal/svc-a/x/~z?q=%2e%2e']);
  });

  it('with normalizePath off, rewritePrefix still refuses a climb out of the prefix', async () => {
    const up = track(await startUpstream(ok('a')));
    const px = track(
      await startProxy({
        http: { normalizePath: false, mergeSlashes: false },
        upstreams: { a: { endpoints: [up.url] } },
        routes: [{ name: 'a', match: { pathPrefix: '/svc-a' }, upstream: 'a', rewritePrefix: '/internal/svc-a' }],
      }),
    );
    const port = px.app.proxy.port;
    expect((await rawGet(port, '/svc-a/../../secret')).status).toBe(400);
    expect((await rawGet(port, '/svc-a/%61')).status).toBe(200);
    expect(up.seen.map((s) => s.url)).toEqual(['/internal/svc-a/%61']);
  });

  it('escapedSlashes: redirect answers 307 to the unescaped path', async () => {
    const up = track(await startUpstream(ok('a')));
    const px = track(
      await startProxy({
        http: { escapedSlashes: 'redirect' },
        upstreams: { a: { endpoints: [up.url] } },
        routes: [{ name: 'a', match: { pathPrefix: '/' }, upstream: 'a' }],
      }),
    );
    const r = await rawGet(px.app.proxy.port, '/a%2Fb?x=1');
    expect(r.status).toBe(307);
    expect(r.text).toMatch(/\r\nlocation: \/a\/b\?x=1\r\n/);
    expect(up.seen).toEqual([]);
  });
});
