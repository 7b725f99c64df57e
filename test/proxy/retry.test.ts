import { describe, expect, it } from 'vitest';
import { failFirst, hang, ok, refusedPort, resetBeforeHeaders, startUpstream } from '../helpers/upstream.js';
import { metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();
/** Fast backoff so retries do not slow the suite; breakers off unless a test wants one. */
const FAST = { backoff: { base: '1ms', max: '2ms' } };
const NO_BREAKER = { enabled: false };

describe('what gets retried', () => {
  it('retries a GET answered 503, then 200, with x-outrigger-attempts: 2', async () => {
    const up = track(await startUpstream(failFirst(1, 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('ok 2');
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(up.seen.map((s) => s.method)).toEqual(['GET', 'GET']);
    expect(await metricValue(px.metricsUrl, 'outrigger_retries_total', { route: 'r1', reason: 'gateway_error' })).toBe(1);
  });

  it('does not retry a POST answered 503: the upstream sees exactly one POST', async () => {
    const up = track(await startUpstream(failFirst(5, 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST })));
    const r = await req(px.url, { method: 'POST', path: '/a', body: 'hello' });
    expect(r.status).toBe(503);
    expect(r.body).toBe('fail 1');
    expect(r.headers['x-outrigger-attempts']).toBe('1');
    expect(r.headers['x-outrigger-error']).toBeUndefined();
    expect(up.seen.filter((s) => s.method === 'POST')).toHaveLength(1);
  });

  it('retries a POST after connection refused, sending the body again', async () => {
    const up = track(await startUpstream(ok('yes')));
    const dead = await refusedPort();
    const px = track(await startProxy(oneRoute([`http://127.0.0.1:${dead}`, up.url], { retry: FAST, breaker: NO_BREAKER })));
    const r = await req(px.url, { method: 'POST', path: '/a', body: 'payload' });
    expect(r.status).toBe(200);
    // Round-robin starts at the dead endpoint, so this was a retry.
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]!.body).toBe('payload');
    expect(await metricValue(px.metricsUrl, 'outrigger_retries_total', { route: 'r1', reason: 'connect_failure' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_upstream_attempts_total', { route: 'r1', upstream: 'up', outcome: 'connect_failure' })).toBe(1);
  });

  it('retries a POST with an idempotency-key answered 503', async () => {
    const up = track(await startUpstream(failFirst(1, 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST })));
    const r = await req(px.url, { method: 'POST', path: '/a', body: 'x', headers: { 'idempotency-key': 'k-1' } });
    expect(r.status).toBe(200);
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(up.seen.map((s) => [s.method, s.body, s.headers['idempotency-key']])).toEqual([
      ['POST', 'x', 'k-1'],
      ['POST', 'x', 'k-1'],
    ]);
  });

  it('does not retry a POST reset before headers (it may have reached the upstream)', async () => {
    const up = track(await startUpstream(resetBeforeHeaders));
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST, breaker: NO_BREAKER })));
    const r = await req(px.url, { method: 'POST', path: '/a', body: 'x' });
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect(up.seen).toHaveLength(1);
  });

  it('retries a GET reset before headers, then answers', async () => {
    const up = track(await startUpstream((req, res, n) => (n === 1 ? resetBeforeHeaders(req, res, n, '') : ok('second')(req, res, n, ''))));
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST, breaker: NO_BREAKER })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('second');
    expect(r.headers['x-outrigger-attempts']).toBe('2');
  });

  it('does not retry a 500 by default, but does with on: [5xx]', async () => {
    const up = track(await startUpstream(failFirst(1, 500)));
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST })));
    expect((await req(px.url, { path: '/a' })).status).toBe(500);
    await px.close();
    const up2 = track(await startUpstream(failFirst(1, 500)));
    const px2 = track(await startProxy(oneRoute(up2.url, { retry: { ...FAST, on: ['5xx'] } })));
    const r = await req(px2.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.headers['x-outrigger-attempts']).toBe('2');
  });

  it('retries a listed status with retriable-status (429)', async () => {
    const up = track(await startUpstream(failFirst(1, 429)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, on: ['retriable-status'], statuses: [429] } })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(up.seen).toHaveLength(2);
  });

  it('returns the last upstream response as it is when retries run out', async () => {
    const up = track(await startUpstream((_q, res, n) => {
      res.writeHead(503, { 'content-type': 'text/plain', 'x-which': String(n) });
      res.end(`attempt ${n}`);
    }));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, attempts: 3 }, breaker: NO_BREAKER })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(503);
    expect(r.body).toBe('attempt 4');
    expect(r.headers['x-which']).toBe('4');
    expect(r.headers['x-outrigger-attempts']).toBe('4');
    expect(r.headers['x-outrigger-error']).toBeUndefined();
    expect(up.seen).toHaveLength(4);
  });

  it('answers 502 OUTRIGGER_UPSTREAM_UNAVAILABLE when connect failures use up the retries', async () => {
    const dead = await refusedPort();
    const px = track(await startProxy(oneRoute(`http://127.0.0.1:${dead}`, { retry: FAST, breaker: NO_BREAKER })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect(r.headers['x-outrigger-attempts']).toBe('3');
    expect(JSON.parse(r.body)).toEqual({ error: { code: 'OUTRIGGER_UPSTREAM_UNAVAILABLE', message: expect.any(String), route: 'r1', attempts: 3 } });
  });

  it('throws away a large or chunked 5xx body before retrying', async () => {
    const up = track(
      await startUpstream((q, res, n) => {
        if (n > 1) return ok('fine')(q, res, n, '');
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('x'.repeat(200_000));
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('fine');
  });

  it('attempts: 0 turns retries off', async () => {
    const up = track(await startUpstream(failFirst(1, 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { attempts: 0 } })));
    expect((await req(px.url, { path: '/a' })).status).toBe(503);
    expect(up.seen).toHaveLength(1);
  });

  it('sends each retry to a different endpoint', async () => {
    const a = track(await startUpstream(ok('a', 503)));
    const b = track(await startUpstream(ok('b', 503)));
    const px = track(await startProxy(oneRoute([a.url, b.url], { retry: { ...FAST, attempts: 1 }, breaker: NO_BREAKER })));
    for (let i = 0; i < 6; i++) {
      const r = await req(px.url, { path: '/a', headers: { 'x-request-id': `id-${i}` } });
      expect(r.status).toBe(503);
      expect(r.headers['x-outrigger-attempts']).toBe('2');
    }
    // Every request was tried once on each endpoint, never twice on the same one.
    for (let i = 0; i < 6; i++) {
      expect(a.seen.filter((s) => s.headers['x-request-id'] === `id-${i}`)).toHaveLength(1);
      expect(b.seen.filter((s) => s.headers['x-request-id'] === `id-${i}`)).toHaveLength(1);
    }
  });

  it('ignores a client header that looks like a policy knob', async () => {
    const up = track(await startUpstream(ok('x', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, attempts: 1 }, breaker: NO_BREAKER })));
    const r = await req(px.url, { path: '/a', headers: { 'x-outrigger-attempts': '9', 'x-envoy-max-retries': '9', 'x-outrigger-retries': '9' } });
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(up.seen).toHaveLength(2);
  });
});

describe('request bodies', () => {
  it('streams a body larger than bufferBody and does not retry it once sent', async () => {
    const up = track(await startUpstream(failFirst(1, 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, bufferBody: 16 } })));
    const body = 'x'.repeat(4096);
    const r = await req(px.url, { method: 'PUT', path: '/a', body });
    expect(r.status).toBe(503);
    expect(r.headers['x-outrigger-attempts']).toBe('1');
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]!.body).toBe(body);
  });

  it('buffers a body up to bufferBody and replays it on retry', async () => {
    const up = track(await startUpstream(failFirst(1, 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, bufferBody: 4096 } })));
    const body = 'y'.repeat(4096);
    const r = await req(px.url, { method: 'PUT', path: '/a', body });
    expect(r.status).toBe(200);
    expect(up.seen.map((s) => s.body)).toEqual([body, body]);
  });

  it('retries a streamed body after a connect failure, when not a byte was sent', async () => {
    const up = track(await startUpstream(ok('got it')));
    const dead = await refusedPort();
    const px = track(await startProxy(oneRoute([`http://127.0.0.1:${dead}`, up.url], { retry: { ...FAST, bufferBody: 16 }, breaker: NO_BREAKER })));
    const body = 'z'.repeat(2048);
    const r = await req(px.url, { method: 'PUT', path: '/a', body });
    expect(r.status).toBe(200);
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(up.seen[0]!.body).toBe(body);
  });

  it('passes a chunked request body through intact', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    const r = await req(px.url, { method: 'POST', path: '/a', body: 'chunky body', chunked: true });
    expect(r.status).toBe(200);
    expect(up.seen[0]!.body).toBe('chunky body');
  });
});

describe('Retry-After', () => {
  // A 5s backoff that would blow the timeout: if the retry happens quickly, Retry-After replaced it.
  const SLOW_BACKOFF = { backoff: { base: '5s', max: '5s', jitter: 'none' } };

  it('honours Retry-After in seconds instead of the backoff', async () => {
    const up = track(await startUpstream(failFirst(1, 503, { 'retry-after': '1' })));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '10s', retry: { ...SLOW_BACKOFF, retryAfter: { max: '2s' } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(elapsed).toBeGreaterThanOrEqual(950);
    expect(elapsed).toBeLessThan(4000);
  });

  it('honours Retry-After as an HTTP date', async () => {
    const up = track(
      await startUpstream((q, res, n) => failFirst(1, 503, { 'retry-after': new Date(Date.now() + 2000).toUTCString() })(q, res, n, '')),
    );
    const px = track(await startProxy(oneRoute(up.url, { timeout: '10s', retry: { ...SLOW_BACKOFF, retryAfter: { max: '3s' } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(200);
    expect(up.seen).toHaveLength(2);
    // The date has whole-second precision: the wait is between 1s and 2s.
    expect(elapsed).toBeGreaterThanOrEqual(500);
    expect(elapsed).toBeLessThan(4000);
  });

  it('makes the response final when Retry-After is longer than retryAfter.max', async () => {
    const up = track(await startUpstream(failFirst(1, 503, { 'retry-after': '10' })));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, retryAfter: { max: '2s' } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(r.status).toBe(503);
    expect(r.headers['retry-after']).toBe('10');
    expect(up.seen).toHaveLength(1);
  });

  it('makes the response final when Retry-After does not fit the deadline', async () => {
    const up = track(await startUpstream(failFirst(1, 503, { 'retry-after': '2' })));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '1s', retry: { ...FAST, retryAfter: { max: '5s' } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    expect(performance.now() - t0).toBeLessThan(900);
    expect(r.status).toBe(503);
    expect(up.seen).toHaveLength(1);
  });

  it('ignores an unparseable Retry-After and uses the backoff', async () => {
    const up = track(await startUpstream(failFirst(1, 503, { 'retry-after': '-1' })));
    const px = track(await startProxy(oneRoute(up.url, { retry: { backoff: { base: '300ms', max: '300ms', jitter: 'none' } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(280);
  });

  it('uses the backoff when retryAfter.honor is false', async () => {
    const up = track(await startUpstream(failFirst(1, 503, { 'retry-after': '10' })));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, retryAfter: { honor: false } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    expect(performance.now() - t0).toBeLessThan(1500);
    expect(r.status).toBe(200);
    expect(up.seen).toHaveLength(2);
  });
});

describe('retry budget', () => {
  it('stops retries under a 100% failure load and counts the refusals', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(
      await startProxy(oneRoute(up.url, { retry: { ...FAST, attempts: 2, budget: { ratio: 0.2, minPerSecond: 1, window: '10s' } }, breaker: NO_BREAKER })),
    );
    const N = 100;
    for (let i = 0; i < N; i += 10) {
      await Promise.all(Array.from({ length: 10 }, () => req(px.url, { path: '/a' })));
    }
    // Without a budget: 3 attempts per request. With it: at most max(1*10, 0.2*100) = 20 retries.
    const retries = up.seen.length - N;
    expect(retries).toBeGreaterThanOrEqual(10);
    expect(retries).toBeLessThanOrEqual(20);
    const exhausted = await metricValue(px.metricsUrl, 'outrigger_retry_budget_exhausted_total', { route: 'r1' });
    // Every request wanted 2 retries; each refused one was counted.
    expect(exhausted).toBeGreaterThanOrEqual(N - retries);
    expect(await metricValue(px.metricsUrl, 'outrigger_retries_total', { route: 'r1', reason: 'gateway_error' })).toBe(retries);
  });

  it('budget.enabled: false lets every retry through', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { ...FAST, attempts: 2, budget: { enabled: false, minPerSecond: 0, ratio: 0 } }, breaker: NO_BREAKER })));
    for (let i = 0; i < 10; i++) await req(px.url, { path: '/a' });
    expect(up.seen).toHaveLength(30);
  });
});

describe('hang + retry', () => {
  it('does not retry after the route deadline even with attempts left', async () => {
    const up = track(await startUpstream(hang));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '200ms', retry: FAST, breaker: NO_BREAKER })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(504);
    expect(up.seen).toHaveLength(1);
  });
});
