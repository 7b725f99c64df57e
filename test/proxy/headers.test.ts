import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { clientResponseHeaders, parseRetryAfter, upstreamRequestHeaders } from '../../src/proxy/headers.js';
import { ok, startUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();
const info = { clientAddress: '10.0.0.9', host: 'svc.local', requestId: 'rid-1', upstreamHost: null };

/** Pairs of a flat raw header array, names lower-cased. */
const pairs = (raw: string[]) => {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return out;
};
const names = (raw: string[]) => pairs(raw).map(([n]) => n);

describe('upstreamRequestHeaders (unit)', () => {
  it('strips hop-by-hop headers and those named in Connection, keeps the rest in order', () => {
    const raw = ['Host', 'svc.local', 'Connection', 'keep-alive, X-Secret', 'X-Secret', 's', 'Keep-Alive', 'timeout=5', 'TE', 'trailers', 'Transfer-Encoding', 'chunked', 'Upgrade', 'h2c', 'Proxy-Authorization', 'Basic x', 'Proxy-Connection', 'keep-alive', 'Trailer', 'x-t', 'X-A', '1', 'Set-Thing', 'a', 'Set-Thing', 'b'];
    const out = upstreamRequestHeaders(raw, info);
    // Trailer is end to end (RFC 9110 6.6.2), not hop-by-hop (issue 9).
    expect(names(out)).toEqual(['trailer', 'x-a', 'set-thing', 'set-thing', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'via']);
    expect(pairs(out)).toContainEqual(['set-thing', 'b']);
  });

  it('lower-cases names whatever their case, and matches hop-by-hop and owned names in any case', () => {
    const raw = ['ACCEPT', 'a', 'Accept-Encoding', 'gzip', 'X-Custom-Name', 'v', 'KEEP-ALIVE', 'timeout=5', 'X-Request-ID', 'theirs', 'connection', 'close', 'CONNECTION', 'X-Gone', 'x-gone', '1'];
    const out = upstreamRequestHeaders(raw, info);
    expect(out.slice(0, 6)).toEqual(['ACCEPT', 'a', 'Accept-Encoding', 'gzip', 'X-Custom-Name', 'v']);
    expect(names(out)).toEqual(['accept', 'accept-encoding', 'x-custom-name', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'via']);
    expect(pairs(out)).toContainEqual(['x-request-id', 'rid-1']);
  });

  it('appends the client to x-forwarded-for, joining several headers', () => {
    const out = upstreamRequestHeaders(['X-Forwarded-For', '1.1.1.1', 'x-forwarded-for', '2.2.2.2, 3.3.3.3'], info);
    expect(pairs(out)).toContainEqual(['x-forwarded-for', '1.1.1.1, 2.2.2.2, 3.3.3.3, 10.0.0.9']);
    expect(pairs(out).filter(([n]) => n === 'x-forwarded-for')).toHaveLength(1);
  });

  it('keeps X-Forwarded-Proto/Host an ingress set, replaces the request id, appends to Via (issue 9)', () => {
    const out = upstreamRequestHeaders(['x-forwarded-proto', 'https', 'x-forwarded-host', 'shop.example', 'x-request-id', 'old', 'expect', '100-continue', 'Via', '1.1 ingress'], info);
    expect(pairs(out)).toEqual([
      ['x-forwarded-for', '10.0.0.9'],
      ['x-forwarded-proto', 'https'],
      ['x-forwarded-host', 'shop.example'],
      ['x-request-id', 'rid-1'],
      ['via', '1.1 ingress, 1.1 outrigger'],
    ]);
  });

  it('sets X-Forwarded-Proto/Host when absent and names itself in Via by http.via', () => {
    const out = upstreamRequestHeaders([], { ...info, via: 'edge-7' });
    expect(pairs(out)).toEqual([
      ['x-forwarded-for', '10.0.0.9'],
      ['x-forwarded-proto', 'http'],
      ['x-forwarded-host', 'svc.local'],
      ['x-request-id', 'rid-1'],
      ['via', '1.1 edge-7'],
    ]);
  });

  it('sets host only with preserveHost (undici otherwise sends the endpoint authority)', () => {
    expect(names(upstreamRequestHeaders(['Host', 'a'], info))).not.toContain('host');
    expect(pairs(upstreamRequestHeaders(['Host', 'a'], { ...info, upstreamHost: 'a:81' }))).toContainEqual(['host', 'a:81']);
  });
});

describe('clientResponseHeaders (unit)', () => {
  const b = (...xs: string[]) => xs.map((x) => Buffer.from(x, 'latin1'));
  it('strips hop-by-hop and Connection-named headers, lower-cases names, keeps duplicates', () => {
    const head = clientResponseHeaders(b('Connection', 'close, X-Hop', 'X-Hop', '1', 'Keep-Alive', 'timeout=9', 'Transfer-Encoding', 'chunked', 'Proxy-Authenticate', 'Basic', 'Set-Cookie', 'a=1', 'Set-Cookie', 'b=2', 'Content-Length', '42', 'Retry-After', '3'));
    expect(head.headers).toEqual(['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-length', '42', 'retry-after', '3']);
    expect(head.contentLength).toBe(42);
    expect(head.retryAfter).toBe('3');
  });

  it('lower-cases names whatever their case, well-known or not', () => {
    const head = clientResponseHeaders(b('CONTENT-TYPE', 'text/plain', 'Content-Type', 'text/html', 'X-Custom-Name', 'v', 'ETAG', '"e"', 'Connection', 'Keep-Alive', 'CONNECTION', 'X-Gone', 'x-gone', '1'));
    expect(head.headers).toEqual(['content-type', 'text/plain', 'content-type', 'text/html', 'x-custom-name', 'v', 'etag', '"e"']);
  });

  it('reports no content-length as -1', () => {
    expect(clientResponseHeaders(b('x', 'y')).contentLength).toBe(-1);
    expect(clientResponseHeaders(b('x', 'y')).retryAfter).toBeNull();
  });
});

describe('parseRetryAfter (unit)', () => {
  const now = Date.parse('2026-01-01T00:00:00Z');
  it('reads delta-seconds and HTTP dates', () => {
    expect(parseRetryAfter('0', now)).toBe(0);
    expect(parseRetryAfter('3', now)).toBe(3000);
    expect(parseRetryAfter(' 7 ', now)).toBe(7000);
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter('Thursday, 01-Jan-26 00:00:02 GMT', now)).toBe(2000);
    expect(parseRetryAfter('Thu Jan  1 00:00:04 2026', now) ).not.toBeNull();
  });
  it('returns null for junk', () => {
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(parseRetryAfter('-1', now)).toBeNull();
    expect(parseRetryAfter('1.5', now)).toBeNull();
    expect(parseRetryAfter('2 seconds', now)).toBeNull();
    expect(parseRetryAfter('', now)).toBeNull();
  });
});

describe('headers through the proxy', () => {
  it('strips hop-by-hop request headers, including those named in Connection', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    await req(px.url, {
      path: '/a',
      headers: { connection: 'x-custom, close', 'x-custom': 'secret', 'keep-alive': 'timeout=99', 'proxy-authorization': 'Basic abc', te: 'trailers', 'x-kept': 'yes' },
    });
    const h = up.seen[0]!.headers;
    expect(h['x-kept']).toBe('yes');
    expect(h['x-custom']).toBeUndefined();
    expect(h['keep-alive']).toBeUndefined();
    expect(h['proxy-authorization']).toBeUndefined();
    expect(h.te).toBeUndefined();
    expect(h.connection ?? '').not.toMatch(/x-custom/i);
  });

  it('strips hop-by-hop response headers, including those named in Connection', async () => {
    const up = track(
      await startUpstream((_q, res) => {
        res.setHeader('connection', 'x-hop');
        res.setHeader('x-hop', 'secret');
        res.setHeader('keep-alive', 'timeout=99');
        res.setHeader('proxy-authenticate', 'Basic');
        res.setHeader('set-cookie', ['a=1', 'b=2']);
        res.setHeader('x-kept', 'yes');
        res.end('body');
      }),
    );
    const px = track(await startProxy(oneRoute(up.url)));
    const r = await req(px.url, { path: '/a' });
    expect(r.body).toBe('body');
    expect(r.headers['x-kept']).toBe('yes');
    expect(r.headers['x-hop']).toBeUndefined();
    expect(r.headers['proxy-authenticate']).toBeUndefined();
    expect(r.headers['keep-alive']).not.toBe('timeout=99');
    expect(r.headers['set-cookie']).toEqual(['a=1', 'b=2']);
  });

  it('sets x-forwarded-*, appends to x-forwarded-for, and sets Host to the endpoint authority', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    await req(px.url, { path: '/a', headers: { host: 'catalog.example:8080', 'x-forwarded-for': '203.0.113.7' } });
    await req(px.url, { path: '/b', headers: { host: 'catalog.example' } });
    const [a, b] = up.seen.map((s) => s.headers);
    expect(a!['x-forwarded-for']).toBe('203.0.113.7, 127.0.0.1');
    expect(a!['x-forwarded-proto']).toBe('http');
    expect(a!['x-forwarded-host']).toBe('catalog.example:8080');
    expect(a!.host).toBe(`127.0.0.1:${up.port}`);
    expect(b!['x-forwarded-for']).toBe('127.0.0.1');
    expect(b!['x-forwarded-host']).toBe('catalog.example');
  });

  it('keeps the client Host with preserveHost: true', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url, { preserveHost: true })));
    await req(px.url, { path: '/a', headers: { host: 'catalog.example:8080' } });
    expect(up.seen[0]!.headers.host).toBe('catalog.example:8080');
  });

  it('generates x-request-id when absent and passes it on when present', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    await req(px.url, { path: '/a' });
    await req(px.url, { path: '/a' });
    await req(px.url, { path: '/a', headers: { 'x-request-id': 'abc-123' } });
    const ids = up.seen.map((s) => s.headers['x-request-id']);
    expect(ids[0]).toMatch(/^[0-9a-f-]{36}$/);
    expect(ids[1]).toMatch(/^[0-9a-f-]{36}$/);
    expect(ids[0]).not.toBe(ids[1]);
    expect(ids[2]).toBe('abc-123');
    expect(up.seen[2]!.rawHeaders.filter((n) => n.toLowerCase() === 'x-request-id')).toHaveLength(1);
  });

  it('keeps the same x-request-id across retries and on proxy errors', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { backoff: { base: '1ms', max: '1ms' } }, breaker: { consecutiveFailures: 3 } })));
    await req(px.url, { path: '/a', headers: { 'x-request-id': 'r-1' } });
    expect(up.seen.map((s) => s.headers['x-request-id'])).toEqual(['r-1', 'r-1', 'r-1']);
    const rejected = await req(px.url, { path: '/a', headers: { 'x-request-id': 'r-2' } });
    expect(rejected.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(rejected.headers['x-request-id']).toBe('r-2');
  });

  it('adds x-outrigger-attempts to every response that reached an upstream, and not to NO_ROUTE', async () => {
    const up = track(await startUpstream(ok('x', 404)));
    const px = track(await startProxy({ upstreams: { up: { endpoints: [up.url] } }, routes: [{ name: 'r1', match: { pathPrefix: '/a' }, upstream: 'up' }] }));
    expect((await req(px.url, { path: '/a' })).headers['x-outrigger-attempts']).toBe('1');
    const none = await req(px.url, { path: '/zzz' });
    expect(none.status).toBe(404);
    expect(none.headers['x-outrigger-error']).toBe('OUTRIGGER_NO_ROUTE');
    expect(none.headers['x-outrigger-attempts']).toBeUndefined();
  });

  it('never decodes or alters bodies', async () => {
    const bytes = Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0x00, 0x10, 0x80, 0xfe]);
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-encoding': 'gzip', 'content-type': 'application/octet-stream', 'content-length': String(bytes.length) });
        res.end(bytes);
      }),
    );
    const px = track(await startProxy(oneRoute(up.url)));
    const got = await new Promise<{ enc: string | undefined; body: Buffer }>((resolve, reject) => {
      const r = request({ host: '127.0.0.1', port: new URL(px.url).port, path: '/a', agent: false, headers: { 'accept-encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ enc: res.headers['content-encoding'], body: Buffer.concat(chunks) }));
      });
      r.on('error', reject);
      r.end();
    });
    expect(got.enc).toBe('gzip');
    expect(got.body.equals(bytes)).toBe(true);
    expect(up.seen[0]!.headers['accept-encoding']).toBe('gzip');
  });
});
