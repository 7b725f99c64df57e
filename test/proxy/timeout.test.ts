import { describe, expect, it } from 'vitest';
import { hang, ok, startUpstream } from '../helpers/upstream.js';
import { metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

const track = useCleanup();

describe('deadline', () => {
  it('holds with a hanging upstream: 504 OUTRIGGER_TIMEOUT within the timeout plus a margin', async () => {
    const sockets: Array<{ destroyed: boolean }> = [];
    const up = track(await startUpstream((q) => void sockets.push(q.socket)));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '300ms' })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(504);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_TIMEOUT');
    expect(JSON.parse(r.body)).toEqual({ error: { code: 'OUTRIGGER_TIMEOUT', message: expect.any(String), route: 'r1', attempts: 1 } });
    // A timer never fires early; the upper bound is generous for a loaded machine.
    expect(elapsed).toBeGreaterThanOrEqual(280);
    expect(elapsed).toBeLessThan(1000);
    expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'r1', kind: 'total' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_upstream_attempts_total', { route: 'r1', upstream: 'up', outcome: 'timeout' })).toBe(1);
    // The hung upstream request is abandoned, not left open.
    await waitFor(() => sockets[0]?.destroyed, { what: 'the upstream socket to close', timeout: 2000 });
  });

  it('bounds retries and backoff too: perTryTimeout attempts never stretch past it', async () => {
    const up = track(await startUpstream(hang));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '500ms', retry: { attempts: 10, perTryTimeout: '200ms', backoff: { base: '1ms', max: '1ms' } }, breaker: { enabled: false } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    const elapsed = performance.now() - t0;
    expect(r.status).toBe(504);
    expect(elapsed).toBeGreaterThanOrEqual(480);
    expect(elapsed).toBeLessThan(1300);
    // 200 + 200 + the 100ms that is left: three attempts, the last cut by the deadline.
    expect(up.seen.length).toBe(3);
    expect(r.headers['x-outrigger-attempts']).toBe('3');
    expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'r1', kind: 'per_try' })).toBe(2);
    expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'r1', kind: 'total' })).toBe(1);
  });

  it('retries after a per-try timeout, then succeeds', async () => {
    const up = track(await startUpstream((q, res, n) => (n === 1 ? undefined : ok('second')(q, res, n, ''))));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '5s', retry: { perTryTimeout: '200ms', backoff: { base: '1ms', max: '1ms' } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(r.status).toBe(200);
    expect(r.body).toBe('second');
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    expect(await metricValue(px.metricsUrl, 'outrigger_retries_total', { route: 'r1', reason: 'per_try_timeout' })).toBe(1);
  });

  it('does not retry a POST after a per-try timeout', async () => {
    const up = track(await startUpstream(hang));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '5s', retry: { perTryTimeout: '150ms' } })));
    const r = await req(px.url, { method: 'POST', path: '/a', body: 'x' });
    expect(r.status).toBe(504);
    expect(up.seen).toHaveLength(1);
  });

  it('never starts a backoff that would end past the deadline', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '300ms', retry: { backoff: { base: '1s', max: '1s', jitter: 'none' } } })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    // The 1s backoff does not fit in 300ms, so the first answer is final, at once.
    expect(performance.now() - t0).toBeLessThan(280);
    expect(r.status).toBe(503);
    expect(r.body).toBe('down');
    expect(up.seen).toHaveLength(1);
  });

  it('timeout: 0 means no deadline', async () => {
    const up = track(await startUpstream((_q, res) => setTimeout(() => ok('late')(_q, res, 0, ''), 400)));
    const px = track(await startProxy(oneRoute(up.url, { timeout: 0 }, { defaults: { timeout: '100ms' } })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('late');
  });

  it('the deadline covers headers only: a slow body after fast headers is fine', async () => {
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('a');
        setTimeout(() => res.end('b'), 500);
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { timeout: '200ms', bodyTimeout: '5s' })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('ab');
    expect(r.complete).toBe(true);
  });
});
