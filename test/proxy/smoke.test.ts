import { afterEach, describe, expect, it } from 'vitest';
import { failFirst, ok, refusedPort, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';

let up: TestUpstream | undefined;
let px: TestProxy | undefined;
afterEach(async () => {
  await px?.close();
  await up?.close();
  px = up = undefined;
});

describe('smoke', () => {
  it('retries a GET answered 503, then 200', async () => {
    up = await startUpstream(failFirst(1, 503));
    px = await startProxy(oneRoute(up.url));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(up.seen.length).toBe(2);
  });

  it('does not retry a POST answered 503', async () => {
    up = await startUpstream(failFirst(5, 503));
    px = await startProxy(oneRoute(up.url));
    const r = await req(px.url, { method: 'POST', path: '/a', body: 'hello' });
    expect(r.status).toBe(503);
    expect(up.seen.filter((s) => s.method === 'POST').length).toBe(1);
    expect(up.seen[0]?.body).toBe('hello');
  });

  it('retries a POST after connection refused, on the other endpoint', async () => {
    up = await startUpstream(ok('yes'));
    const dead = await refusedPort();
    px = await startProxy(oneRoute([`http://127.0.0.1:${dead}`, up.url]));
    for (let i = 0; i < 2; i++) {
      const r = await req(px.url, { method: 'POST', path: '/a', body: 'b'.repeat(10) });
      expect(r.status).toBe(200);
      expect(r.body).toBe('yes');
    }
    expect(up.seen.every((s) => s.body === 'bbbbbbbbbb')).toBe(true);
  });
});
