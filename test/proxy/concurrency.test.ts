import { describe, expect, it } from 'vitest';
import { hang, ok, startUpstream } from '../helpers/upstream.js';
import { metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

const track = useCleanup();

describe('concurrency limit', () => {
  it('answers 503 OUTRIGGER_OVERLOADED beyond max, without touching the upstream', async () => {
    const up = track(await startUpstream(hang));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '10s', concurrency: { max: 1 } })));
    const first = req(px.url, { path: '/slow' }).catch(() => null);
    await waitFor(() => up.seen.length === 1, { what: 'the first request upstream' });
    expect(await metricValue(px.metricsUrl, 'outrigger_inflight_requests', { route: 'r1' })).toBe(1);
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(503);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_OVERLOADED');
    expect(JSON.parse(r.body).error).toMatchObject({ code: 'OUTRIGGER_OVERLOADED', route: 'r1', attempts: 0 });
    expect(up.seen).toHaveLength(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_overload_rejections_total', { route: 'r1' })).toBe(1);
    await px.close();
    await first;
  });

  it('frees the slot when the response ends', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url, { concurrency: { max: 1 } })));
    for (let i = 0; i < 5; i++) expect((await req(px.url, { path: '/a' })).status).toBe(200);
    expect((await metricValue(px.metricsUrl, 'outrigger_overload_rejections_total', { route: 'r1' })) ?? 0).toBe(0);
    expect(await metricValue(px.metricsUrl, 'outrigger_inflight_requests', { route: 'r1' })).toBe(0);
  });

  it('queues up to `queue` requests, under the deadline', async () => {
    let release: (() => void) | null = null;
    const up = track(
      await startUpstream((q, res, n) => {
        if (n === 1) release = () => ok('first')(q, res, n, '');
        else ok(`n${n}`)(q, res, n, '');
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { timeout: '5s', concurrency: { max: 1, queue: 1 } })));
    const first = req(px.url, { path: '/a' });
    await waitFor(() => release !== null, { what: 'the first request upstream' });
    const queued = req(px.url, { path: '/b' });
    // Wait until the queued request is inside the proxy before the third arrives.
    await waitFor(async () => (await metricValue(px.metricsUrl, 'outrigger_inflight_requests', { route: 'r1' })) === 2);
    const third = await req(px.url, { path: '/c' });
    expect(third.headers['x-outrigger-error']).toBe('OUTRIGGER_OVERLOADED');
    (release as unknown as () => void)();
    expect((await first).body).toBe('first');
    expect((await queued).body).toBe('n2');
  });

  it('times out a queued request at the deadline, and never sends it later', async () => {
    // The first response holds the slot while its body trickles for 1s, past the queued deadline.
    const up = track(
      await startUpstream((q, res, n) => {
        if (q.url !== '/a') return ok()(q, res, n, '');
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('a');
        setTimeout(() => res.end('b'), 1000);
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { timeout: '300ms', concurrency: { max: 1, queue: 1 } })));
    const first = req(px.url, { path: '/a' });
    await waitFor(() => up.seen.length === 1);
    const t0 = performance.now();
    const queued = await req(px.url, { path: '/b' });
    expect(queued.status).toBe(504);
    expect(queued.headers['x-outrigger-error']).toBe('OUTRIGGER_TIMEOUT');
    expect(performance.now() - t0).toBeLessThan(900);
    expect((await first).body).toBe('ab');
    // Give the freed slot a chance to (wrongly) run the abandoned request.
    const r = await req(px.url, { path: '/c' });
    expect(r.status).toBe(200);
    expect(up.seen.map((s) => s.url)).toEqual(['/a', '/c']);
  });
});
