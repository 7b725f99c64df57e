import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hang, ok, refusedPort, startUpstream } from '../helpers/upstream.js';
import { metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

const track = useCleanup();
const BODY = '{"items":[],"degraded":true}';
const fallback = (on: string[], extra: Record<string, unknown> = {}) => ({
  on,
  status: 200,
  headers: { 'content-type': 'application/json', 'x-degraded': 'yes' },
  body: BODY,
  ...extra,
});
const FAST = { backoff: { base: '1ms', max: '1ms' } };

function expectFallback(r: { status: number; headers: Record<string, unknown>; body: string }, trigger: string, status = 200) {
  expect(r.status).toBe(status);
  expect(r.body).toBe(BODY);
  expect(r.headers['content-type']).toBe('application/json');
  expect(r.headers['x-degraded']).toBe('yes');
  expect(r.headers['content-length']).toBe(String(Buffer.byteLength(BODY)));
  expect(r.headers['x-outrigger-fallback']).toBe(trigger);
  expect(r.headers['x-outrigger-error']).toBeUndefined();
}

describe('fallback', () => {
  it('breaker-open', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { attempts: 0 }, breaker: { consecutiveFailures: 1 }, fallback: fallback(['breaker-open']) })));
    // The failure that opens the breaker is a plain upstream 503 (5xx is not a listed trigger).
    expect((await req(px.url, { path: '/a' })).body).toBe('down');
    const r = await req(px.url, { path: '/a' });
    expectFallback(r, 'breaker-open');
    expect(up.seen).toHaveLength(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_fallbacks_total', { route: 'r1', trigger: 'breaker-open' })).toBe(1);
  });

  it('timeout', async () => {
    const up = track(await startUpstream(hang));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '200ms', fallback: fallback(['timeout'], { status: 203 }) })));
    const r = await req(px.url, { path: '/a' });
    expectFallback(r, 'timeout', 203);
    expect(r.headers['x-outrigger-attempts']).toBe('1');
    expect(await metricValue(px.metricsUrl, 'outrigger_fallbacks_total', { route: 'r1', trigger: 'timeout' })).toBe(1);
  });

  it('upstream-unavailable', async () => {
    const dead = await refusedPort();
    const px = track(await startProxy(oneRoute(`http://127.0.0.1:${dead}`, { retry: FAST, breaker: { enabled: false }, fallback: fallback(['upstream-unavailable']) })));
    const r = await req(px.url, { path: '/a' });
    expectFallback(r, 'upstream-unavailable');
    expect(r.headers['x-outrigger-attempts']).toBe('3');
  });

  it('5xx: the final upstream response was 5xx', async () => {
    const up = track(await startUpstream(ok('boom', 500)));
    const px = track(await startProxy(oneRoute(up.url, { fallback: fallback(['5xx']) })));
    const r = await req(px.url, { path: '/a' });
    expectFallback(r, '5xx');
    expect(await metricValue(px.metricsUrl, 'outrigger_fallbacks_total', { route: 'r1', trigger: '5xx' })).toBe(1);
    // A 4xx is passed through.
    up.behave = ok('nope', 404);
    const r404 = await req(px.url, { path: '/a' });
    expect(r404.status).toBe(404);
    expect(r404.body).toBe('nope');
    expect(r404.headers['x-outrigger-fallback']).toBeUndefined();
  });

  it('5xx after retries are spent', async () => {
    const up = track(await startUpstream(ok('down', 503)));
    const px = track(await startProxy(oneRoute(up.url, { retry: FAST, breaker: { enabled: false }, fallback: fallback(['5xx']) })));
    const r = await req(px.url, { path: '/a' });
    expectFallback(r, '5xx');
    expect(r.headers['x-outrigger-attempts']).toBe('3');
    expect(up.seen).toHaveLength(3);
  });

  it('overloaded', async () => {
    const up = track(await startUpstream(hang));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '5s', concurrency: { max: 1 }, fallback: fallback(['overloaded']) })));
    const first = req(px.url, { path: '/slow' }).catch(() => null);
    await waitFor(() => up.seen.length === 1, { what: 'the first request upstream' });
    const r = await req(px.url, { path: '/a' });
    expectFallback(r, 'overloaded');
    expect(r.headers['x-outrigger-attempts']).toBeUndefined();
    await px.close();
    await first;
  });

  it('only fires for listed triggers: an unlisted one gets the proxy error', async () => {
    const dead = await refusedPort();
    const px = track(await startProxy(oneRoute(`http://127.0.0.1:${dead}`, { retry: { attempts: 0 }, fallback: fallback(['timeout']) })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect(r.headers['x-outrigger-fallback']).toBeUndefined();
  });

  it('serves bodyFile contents', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-fb-'));
    track({ close: () => rmSync(dir, { recursive: true, force: true }) });
    const file = join(dir, 'degraded.json');
    writeFileSync(file, BODY);
    const dead = await refusedPort();
    const px = track(
      await startProxy(oneRoute(`http://127.0.0.1:${dead}`, { retry: { attempts: 0 }, fallback: { on: ['upstream-unavailable'], status: 503, headers: { 'content-type': 'application/json' }, bodyFile: file } })),
    );
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(503);
    expect(r.body).toBe(BODY);
    expect(r.headers['x-outrigger-fallback']).toBe('upstream-unavailable');
  });

  it('sends headers but no body for HEAD', async () => {
    const dead = await refusedPort();
    const px = track(await startProxy(oneRoute(`http://127.0.0.1:${dead}`, { retry: { attempts: 0 }, fallback: fallback(['upstream-unavailable']) })));
    const r = await req(px.url, { method: 'HEAD', path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('');
    expect(r.headers['x-outrigger-fallback']).toBe('upstream-unavailable');
  });

  it('uses defaults.fallback for routes without their own', async () => {
    const dead = await refusedPort();
    const cfg = oneRoute(`http://127.0.0.1:${dead}`, { retry: { attempts: 0 } }, { defaults: { fallback: fallback(['upstream-unavailable']) } });
    const px = track(await startProxy(cfg));
    expectFallback(await req(px.url, { path: '/a' }), 'upstream-unavailable');
  });
});
