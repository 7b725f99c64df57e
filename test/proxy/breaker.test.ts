import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ok, refusedPort, startUpstream } from '../helpers/upstream.js';
import { breakerState, metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { sleep, waitFor } from '../helpers/wait.js';

const track = useCleanup();
const NO_RETRY = { attempts: 0 };

describe('circuit breaker', () => {
  it('is force-closed by POST /breakers/{name}/reset after opening on failures', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 1, halfOpenAfter: '1m' } })));
    await req(px.url, { path: '/a' });
    expect(await breakerState(px)).toMatchObject({ state: 'open' });
    up.behave = ok('up');
    const r = await fetch(`${px.adminUrl}/breakers/r1/reset`, { method: 'POST' });
    expect(r.status).toBe(200);
    expect(await breakerState(px)).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
    const after = await req(px.url, { path: '/a' });
    expect(after.status).toBe(200);
    expect(after.body).toBe('up');
  });

  it('opens after exactly N failures, fails fast without touching the upstream, half-opens and closes', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 3, halfOpenAfter: '500ms' } })));
    for (let i = 1; i <= 2; i++) {
      expect((await req(px.url, { path: '/a' })).status).toBe(503);
      expect(await breakerState(px)).toMatchObject({ state: 'closed', consecutiveFailures: i });
    }
    const third = await req(px.url, { path: '/a' });
    expect(third.status).toBe(503);
    expect(third.body).toBe('down'); // the failure that trips it is still the upstream's answer
    const openedAt = performance.now();
    expect(await breakerState(px)).toMatchObject({ state: 'open', opens: 1, routes: ['r1'] });

    const rejected = await req(px.url, { path: '/a' });
    expect(rejected.status).toBe(503);
    expect(rejected.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(rejected.headers['retry-after']).toBe('1');
    expect(JSON.parse(rejected.body)).toEqual({ error: { code: 'OUTRIGGER_BREAKER_OPEN', message: expect.any(String), route: 'r1', attempts: 0 } });
    expect(up.seen).toHaveLength(3);
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_rejections_total', { breaker: 'r1' })).toBe(1);

    up.behave = ok('back');
    const r = await waitFor(
      async () => {
        const x = await req(px.url, { path: '/a' });
        return x.status === 200 ? x : null;
      },
      { interval: 25, what: 'the breaker to let a probe through' },
    );
    // cockatiel guarantees the breaker stays open for halfOpenAfter.
    expect(performance.now() - openedAt).toBeGreaterThanOrEqual(450);
    expect(r.body).toBe('back');
    expect(up.seen).toHaveLength(4);
    expect(await breakerState(px)).toMatchObject({ state: 'closed', consecutiveFailures: 0, retryAfterSeconds: null });
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_transitions_total', { breaker: 'r1', to: 'open' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_transitions_total', { breaker: 'r1', to: 'half-open' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_transitions_total', { breaker: 'r1', to: 'closed' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_state', { breaker: 'r1', state: 'closed' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_state', { breaker: 'r1', state: 'open' })).toBe(0);
  });

  it('logs every transition at warn with {breaker, from, to}', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 1, halfOpenAfter: '100ms' } })));
    await req(px.url, { path: '/a' });
    up.behave = ok();
    await waitFor(async () => (await req(px.url, { path: '/a' })).status === 200, { interval: 20 });
    const lines = px.logs.filter((l) => l.breaker === 'r1' && 'from' in l);
    expect(lines.map((l) => [l.level, l.from, l.to])).toEqual([
      ['warn', 'closed', 'open'],
      ['warn', 'open', 'half-open'],
      ['warn', 'half-open', 'closed'],
    ]);
  });

  it('re-opens on a failed probe', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 2, halfOpenAfter: '200ms' } })));
    await req(px.url, { path: '/a' });
    await req(px.url, { path: '/a' });
    expect((await breakerState(px)).state).toBe('open');
    // Poll until the probe reaches the upstream; it fails, so the breaker opens again at once.
    const probe = await waitFor(
      async () => {
        const x = await req(px.url, { path: '/a' });
        return x.headers['x-outrigger-error'] === undefined ? x : null;
      },
      { interval: 20 },
    );
    expect(probe.body).toBe('down');
    expect(up.seen).toHaveLength(3);
    expect(await breakerState(px)).toMatchObject({ state: 'open', opens: 2 });
    const next = await req(px.url, { path: '/a' });
    expect(next.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(up.seen).toHaveLength(3);
  });

  it('grows the open time on each consecutive re-open when halfOpenAfter is { base, max }', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 1, halfOpenAfter: { base: '200ms', max: '2s' } } })));
    await req(px.url, { path: '/a' });
    const waitProbe = async () => {
      const from = performance.now();
      const seen = up.seen.length;
      await waitFor(async () => (await req(px.url, { path: '/a' }), up.seen.length > seen), { interval: 15 });
      return performance.now() - from;
    };
    await waitProbe(); // after ~200ms; the probe fails and re-opens for 400ms
    const second = await waitProbe();
    expect(second).toBeGreaterThanOrEqual(380);
    expect(await breakerState(px)).toMatchObject({ state: 'open', opens: 3 });
    // The third open lasts 800ms: retry-after says so in whole seconds.
    const r = await req(px.url, { path: '/a' });
    expect(r.headers['retry-after']).toBe('1');
    const third = await waitProbe();
    expect(third).toBeGreaterThanOrEqual(750);
  });

  it('rounds retry-after up to whole seconds until the probe', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 1, halfOpenAfter: '2500ms' } })));
    await req(px.url, { path: '/a' });
    const r = await req(px.url, { path: '/a' });
    expect(r.headers['retry-after']).toBe('3');
    expect((await breakerState(px)).retryAfterSeconds).toBe(3);
  });

  it('counts every attempt, retries included', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { attempts: 2, backoff: { base: '1ms', max: '1ms' } }, breaker: { consecutiveFailures: 3 } })));
    // One request, three attempts: the breaker opens on the third.
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(503);
    expect(r.headers['x-outrigger-attempts']).toBe('3');
    expect((await breakerState(px)).state).toBe('open');
  });

  it('never retries a rejection by an open breaker', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { attempts: 5, backoff: { base: '1ms', max: '1ms' } }, breaker: { consecutiveFailures: 2 } })));
    const r = await req(px.url, { path: '/a' });
    // Attempt 1 and 2 fail and open the breaker; the third is refused and the refusal is final.
    expect(r.status).toBe(503);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(up.seen).toHaveLength(2);
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_rejections_total', { breaker: 'r1' })).toBe(1);
  });

  it('counts connect failures by default, and 5xx only when failOn lists it', async () => {
    const dead = await refusedPort();
    const px = track(await startProxy(oneRoute(`http://127.0.0.1:${dead}`, { retry: NO_RETRY, breaker: { consecutiveFailures: 2 } })));
    await req(px.url, { path: '/a' });
    await req(px.url, { path: '/a' });
    expect((await breakerState(px)).state).toBe('open');

    const up = track(await startUpstream(ok('err', 500)));
    const px2 = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 2 } })));
    for (let i = 0; i < 4; i++) await req(px2.url, { path: '/a' });
    expect((await breakerState(px2)).state).toBe('closed');

    const px3 = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 2, failOn: ['5xx'] } })));
    await req(px3.url, { path: '/a' });
    await req(px3.url, { path: '/a' });
    expect((await breakerState(px3)).state).toBe('open');
  });

  it('failureRate mode opens on the share of failures once minRequests is reached', async () => {
    const up = track(await startUpstream((q, res, n) => ok(n % 4 === 1 ? 'fine' : 'bad', n % 4 === 1 ? 200 : 503)(q, res, n, '')));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { failureRate: { threshold: 0.5, window: '10s', minRequests: 8 } } })));
    for (let i = 0; i < 7; i++) await req(px.url, { path: '/a' });
    expect((await breakerState(px)).state).toBe('closed');
    await req(px.url, { path: '/a' });
    // 8 requests, 6 failures: 75% > 50%.
    expect((await breakerState(px)).state).toBe('open');
    expect((await req(px.url, { path: '/a' })).headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(up.seen).toHaveLength(8);
  });

  it('shares one breaker between routes with breaker.name', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const breaker = { name: 'shared', consecutiveFailures: 2 };
    const px = track(
      await startProxy({
        upstreams: { up: { endpoints: [up.url] } },
        routes: [
          { name: 'ra', match: { pathPrefix: '/a' }, upstream: 'up', retry: NO_RETRY, breaker },
          { name: 'rb', match: { pathPrefix: '/b' }, upstream: 'up', retry: NO_RETRY, breaker },
          { name: 'rc', match: { pathPrefix: '/c' }, upstream: 'up', retry: NO_RETRY },
        ],
      }),
    );
    await req(px.url, { path: '/a' });
    await req(px.url, { path: '/a' });
    const rb = await req(px.url, { path: '/b' });
    expect(rb.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(JSON.parse(rb.body).error.route).toBe('rb');
    expect((await req(px.url, { path: '/c' })).body).toBe('down');
    expect(await breakerState(px, 'shared')).toMatchObject({ state: 'open', routes: ['ra', 'rb'] });
    const names = ((await (await fetch(`${px.adminUrl}/breakers`)).json()) as Array<{ name: string }>).map((b) => b.name).sort();
    expect(names).toEqual(['rc', 'shared']);
  });

  it('lets one half-open probe through; others fail fast; a probe whose client leaves gives no verdict, and the next request probes', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { consecutiveFailures: 1, halfOpenAfter: '100ms' } })));
    await req(px.url, { path: '/a' });
    let answer: (() => void) | null = null;
    up.behave = (q, res, n) => (answer = () => ok('late')(q, res, n, ''));
    // Send probes until one reaches the upstream.
    const port = new URL(px.url).port;
    let probeClient: ReturnType<typeof request> | null = null;
    await waitFor(
      async () => {
        const c = request({ host: '127.0.0.1', port, path: '/a', agent: false });
        c.on('error', () => undefined);
        const res = new Promise<number>((r) => c.on('response', (m) => (m.resume(), r(m.statusCode ?? 0))));
        c.end();
        const got = await Promise.race([res, waitFor(() => answer !== null, { timeout: 200, interval: 5 }).then(() => 'probe' as const, () => 'none' as const)]);
        if (got === 'probe') probeClient = c;
        return got === 'probe';
      },
      { interval: 20, what: 'the probe' },
    );
    expect((await breakerState(px)).state).toBe('half-open');
    const during = await req(px.url, { path: '/a' });
    expect(during.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(during.headers['retry-after']).toBe('1');
    expect(up.seen).toHaveLength(2);
    // Then its client walks away: the probe is abandoned without a verdict, whatever the upstream says later.
    (probeClient as unknown as ReturnType<typeof request>).destroy();
    await sleep(100);
    expect((await breakerState(px)).state).toBe('half-open');
    (answer as unknown as () => void)();
    expect((await breakerState(px)).state).toBe('half-open');
    // The very next request is the probe (no new open time), and its verdict counts.
    up.behave = ok('recovered');
    const next = await req(px.url, { path: '/a' });
    expect(next.body).toBe('recovered');
    await waitFor(async () => (await breakerState(px)).state === 'closed', { what: 'the next probe closing it' });
  });

  it('breaker.enabled: false never opens', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: NO_RETRY, breaker: { enabled: false, consecutiveFailures: 1 } })));
    for (let i = 0; i < 3; i++) expect((await req(px.url, { path: '/a' })).body).toBe('down');
    expect(up.seen).toHaveLength(3);
    expect(await (await fetch(`${px.adminUrl}/breakers`)).json()).toEqual([]);
  });
});

describe('half-open probe timeout', () => {
  it('bounds a probe by breaker.probeTimeout when the route has no timeout, so the breaker re-opens and later recovers', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(
      await startProxy(
        oneRoute(up.url, { timeout: 0, retry: NO_RETRY, breaker: { consecutiveFailures: 1, halfOpenAfter: '200ms', probeTimeout: '300ms', failOn: ['5xx'] } }),
      ),
    );
    expect((await req(px.url, { path: '/a' })).status).toBe(503);
    expect(await breakerState(px)).toMatchObject({ state: 'open' });
    up.behave = () => {}; // the upstream now never answers
    await new Promise((r) => setTimeout(r, 300));
    const started = Date.now();
    const probe = await req(px.url, { path: '/a' });
    expect(probe.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await breakerState(px)).toMatchObject({ state: 'open' });
    up.behave = ok('up');
    const recovered = await waitFor(
      async () => {
        const r = await req(px.url, { path: '/a' });
        return r.status === 200 ? r : null;
      },
      { timeout: 8000, interval: 100, what: 'a successful probe' },
    );
    expect(recovered.body).toBe('up');
    expect(await breakerState(px)).toMatchObject({ state: 'closed' });
  });
});
