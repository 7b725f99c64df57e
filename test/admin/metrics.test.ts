import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { start } from '../../src/app.js';
import { droppedLogLines } from '../../src/log.js';
import { hang, ok, refusedPort, resetBeforeHeaders, startUpstream } from '../helpers/upstream.js';
import { LOOPBACK_LISTENERS, metricValue, oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

const track = useCleanup();
const scrape = async (px: { metricsUrl: string }) => (await req(px.metricsUrl, { path: '/metrics' })).body;
const m = (px: TestProxy, name: string, labels: Record<string, string>) => metricValue(px.metricsUrl, name, labels);

describe('/metrics', () => {
  it('carries outrigger_build_info and the last config load result from start-up', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    expect(await m(px, 'outrigger_build_info', { version, node: process.version })).toBe(1);
    expect(await m(px, 'outrigger_config_last_reload_success', {})).toBe(1);
    // From 0 (the drops themselves: test/log.test.ts), read from the process's stdout buffer.
    expect(await m(px, 'outrigger_log_lines_dropped_total', {})).toBe(droppedLogLines());
    const ts = await m(px, 'outrigger_config_last_reload_timestamp_seconds', {});
    expect(ts).toBeGreaterThan(Date.now() / 1000 - 600);
    expect(ts).toBeLessThanOrEqual(Date.now() / 1000 + 1);
  });

  it('starts every series whose labels are known in advance at 0, so rate() sees the first event', async () => {
    const px = track(
      await startProxy({
        upstreams: { up: { endpoints: ['http://127.0.0.1:1'] } },
        routes: [
          { name: 'ws', match: { pathPrefix: '/ws', methods: ['GET'] }, upstream: 'up', upgrades: ['websocket'] },
          { name: 'api', match: { pathPrefix: '/' }, upstream: 'up', upgrades: [], critical: true, fallback: { on: ['breaker-open'], status: 529 } },
        ],
      }),
    );
    const text = await scrape(px);
    for (const to of ['closed', 'open', 'half-open', 'isolated']) {
      expect(await m(px, 'outrigger_breaker_transitions_total', { breaker: 'api', to }), to).toBe(0);
    }
    for (const outcome of ['accepted', 'rejected_breaker', 'upstream_refused']) {
      expect(await m(px, 'outrigger_websocket_upgrades_total', { route: 'ws', outcome }), outcome).toBe(0);
    }
    expect(await m(px, 'outrigger_websocket_closed_total', { route: 'ws', reason: 'upstream' })).toBe(0);
    // Only the methods a route matches get request series, and a route without WebSocket none.
    expect(await m(px, 'outrigger_requests_total', { route: 'ws', method: 'GET', code: '502' })).toBe(0);
    expect(await m(px, 'outrigger_requests_total', { route: 'ws', method: 'POST', code: '502' })).toBeUndefined();
    expect(await m(px, 'outrigger_websocket_upgrades_total', { route: 'api', outcome: 'accepted' })).toBeUndefined();
    for (const code of ['502', '503', '504', '529']) {
      expect(await m(px, 'outrigger_requests_total', { route: 'api', method: 'POST', code }), code).toBe(0);
    }
    expect(await m(px, 'outrigger_requests_total', { route: '_unmatched', method: 'GET', code: '404' })).toBe(0);
    expect(await m(px, 'outrigger_fallbacks_total', { route: 'api', trigger: 'breaker-open' })).toBe(0);
    expect(text).toMatch(/^outrigger_retries_total\{route="api",/m);
    expect(text).toMatch(/^outrigger_timeouts_total\{route="api",/m);
    expect(await m(px, 'outrigger_internal_errors_total', { route: 'api' })).toBe(0);
    // The critical flag the chart's critical-breaker alert joins on.
    expect(await m(px, 'outrigger_breaker_critical', { breaker: 'api' })).toBe(1);
    expect(await m(px, 'outrigger_breaker_critical', { breaker: 'ws' })).toBe(0);
  });

  it('serves every documented metric with its labels', async () => {
    const up = track(await startUpstream((q, res, n) => (q.url === '/fail' ? ok('down', 503)(q, res, n, '') : q.url === '/404' ? ok('nf', 404)(q, res, n, '') : ok()(q, res, n, ''))));
    const px = track(
      await startProxy({
        upstreams: { up: { endpoints: [up.url] } },
        routes: [
          { name: 'main', match: { host: 'svc' }, upstream: 'up', retry: { backoff: { base: '1ms', max: '1ms' } }, breaker: { consecutiveFailures: 3 }, fallback: { on: ['breaker-open'], body: 'fb' } },
        ],
      }),
    );
    const host = { host: 'svc' };
    await req(px.url, { path: '/ok', headers: host });
    await req(px.url, { path: '/404', headers: host });
    await req(px.url, { path: '/fail', headers: host }); // 3 attempts, 2 retries, breaker opens
    await req(px.url, { path: '/ok', headers: host }); // fallback: breaker-open
    await req(px.url, { path: '/x', headers: { host: 'elsewhere' } }); // _unmatched

    const text = await scrape(px);
    for (const name of [
      'outrigger_requests_total',
      'outrigger_request_duration_seconds',
      'outrigger_upstream_attempts_total',
      'outrigger_retries_total',
      'outrigger_retry_budget_exhausted_total',
      'outrigger_breaker_state',
      'outrigger_breaker_transitions_total',
      'outrigger_breaker_rejections_total',
      'outrigger_fallbacks_total',
      'outrigger_timeouts_total',
      'outrigger_overload_rejections_total',
      'outrigger_inflight_requests',
    ]) {
      expect(text, name).toMatch(new RegExp(`^# TYPE ${name} `, 'm'));
    }
    expect(await m(px, 'outrigger_requests_total', { route: 'main', method: 'GET', code: '200' })).toBe(2);
    expect(await m(px, 'outrigger_requests_total', { route: 'main', method: 'GET', code: '404' })).toBe(1);
    expect(await m(px, 'outrigger_requests_total', { route: 'main', method: 'GET', code: '503' })).toBe(1);
    expect(await m(px, 'outrigger_requests_total', { route: '_unmatched', method: 'GET', code: '404' })).toBe(1);
    expect(await m(px, 'outrigger_request_duration_seconds_count', { route: 'main' })).toBe(4);
    expect(await m(px, 'outrigger_request_duration_seconds_bucket', { route: 'main', le: '+Inf' })).toBe(4);
    expect(await m(px, 'outrigger_upstream_attempts_total', { route: 'main', upstream: 'up', outcome: 'success' })).toBe(1);
    expect(await m(px, 'outrigger_upstream_attempts_total', { route: 'main', upstream: 'up', outcome: 'http_4xx' })).toBe(1);
    expect(await m(px, 'outrigger_upstream_attempts_total', { route: 'main', upstream: 'up', outcome: 'http_5xx' })).toBe(3);
    expect(await m(px, 'outrigger_retries_total', { route: 'main', reason: 'gateway_error' })).toBe(2);
    expect(await m(px, 'outrigger_breaker_state', { breaker: 'main', state: 'open' })).toBe(1);
    expect(await m(px, 'outrigger_breaker_state', { breaker: 'main', state: 'closed' })).toBe(0);
    expect(await m(px, 'outrigger_breaker_state', { breaker: 'main', state: 'half-open' })).toBe(0);
    expect(await m(px, 'outrigger_breaker_state', { breaker: 'main', state: 'isolated' })).toBe(0);
    expect(await m(px, 'outrigger_breaker_transitions_total', { breaker: 'main', to: 'open' })).toBe(1);
    expect(await m(px, 'outrigger_breaker_rejections_total', { breaker: 'main' })).toBe(1);
    expect(await m(px, 'outrigger_fallbacks_total', { route: 'main', trigger: 'breaker-open' })).toBe(1);
    expect(await m(px, 'outrigger_inflight_requests', { route: 'main' })).toBe(0);

    // Labels come only from config names and closed enums: no paths, hosts or ids.
    expect(text).not.toMatch(/\/fail|\/ok|elsewhere|svc"/);
  });

  it('counts methods outside the standard set as _other', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    await req(px.url, { method: 'PURGE', path: '/a' });
    await req(px.url, { method: 'PATCH', path: '/a', body: 'x' });
    expect(up.seen.map((s) => s.method)).toEqual(['PURGE', 'PATCH']);
    expect(await m(px, 'outrigger_requests_total', { route: 'r1', method: '_other', code: '200' })).toBe(1);
    expect(await m(px, 'outrigger_requests_total', { route: 'r1', method: 'PATCH', code: '200' })).toBe(1);
    expect(await scrape(px)).not.toContain('PURGE');
  });

  it('labels attempt outcomes timeout, connect_failure and reset, and timeout kinds', async () => {
    const dead = await refusedPort();
    const hung = track(await startUpstream(hang));
    const resets = track(await startUpstream(resetBeforeHeaders));
    const px = track(
      await startProxy({
        upstreams: { dead: { endpoints: [`http://127.0.0.1:${dead}`] }, hung: { endpoints: [hung.url] }, resets: { endpoints: [resets.url] } },
        defaults: { retry: { attempts: 0 }, breaker: { enabled: false } },
        routes: [
          { name: 'dead', match: { pathPrefix: '/dead' }, upstream: 'dead' },
          { name: 'hung', match: { pathPrefix: '/hung' }, upstream: 'hung', timeout: '150ms' },
          { name: 'resets', match: { pathPrefix: '/resets' }, upstream: 'resets' },
        ],
      }),
    );
    expect((await req(px.url, { path: '/dead' })).status).toBe(502);
    expect((await req(px.url, { path: '/hung' })).status).toBe(504);
    expect((await req(px.url, { path: '/resets' })).status).toBe(502);
    expect(await m(px, 'outrigger_upstream_attempts_total', { route: 'dead', upstream: 'dead', outcome: 'connect_failure' })).toBe(1);
    expect(await m(px, 'outrigger_upstream_attempts_total', { route: 'hung', upstream: 'hung', outcome: 'timeout' })).toBe(1);
    expect(await m(px, 'outrigger_upstream_attempts_total', { route: 'resets', upstream: 'resets', outcome: 'reset' })).toBe(1);
    expect(await m(px, 'outrigger_timeouts_total', { route: 'hung', kind: 'total' })).toBe(1);
  });

  it('counts a client that goes away as 499 and not against the breaker or attempt outcomes', async () => {
    const up = track(await startUpstream(hang));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '30s', breaker: { consecutiveFailures: 1, failOn: ['connect-failure', 'reset', 'timeout', 'gateway-error'] } })));
    const port = new URL(px.url).port;
    for (let i = 1; i <= 3; i++) {
      const r = request({ host: '127.0.0.1', port, path: '/a', agent: false });
      r.on('error', () => undefined);
      r.end();
      await waitFor(() => up.seen.length === i, { what: `request ${i} upstream` });
      r.destroy();
      await waitFor(async () => (await m(px, 'outrigger_requests_total', { route: 'r1', method: 'GET', code: '499' })) === i, { what: `499 number ${i}` });
    }
    const text = await scrape(px);
    // Attempt series start at zero; a client leaving must not have moved any of them.
    const attemptSamples = text.split('\n').filter((l) => l.startsWith('outrigger_upstream_attempts_total{'));
    expect(attemptSamples.length).toBeGreaterThan(0);
    for (const l of attemptSamples) expect(l).toMatch(/ 0$/);
    expect(await m(px, 'outrigger_inflight_requests', { route: 'r1' })).toBe(0);
    const breakers = JSON.parse((await req(px.adminUrl, { path: '/breakers' })).body) as Array<{ state: string; consecutiveFailures: number }>;
    expect(breakers[0]).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
    // The transition series exists from start-up, at 0, so rate() sees the first opening.
    expect(await m(px, 'outrigger_breaker_transitions_total', { breaker: 'r1', to: 'open' })).toBe(0);
    // And the client leaving was not retried either.
    expect(up.seen).toHaveLength(3);
  });

  it('answers 404 off /metrics', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    expect((await req(px.metricsUrl, { path: '/' })).status).toBe(404);
    const r = await req(px.metricsUrl, { path: '/metrics' });
    expect(r.status).toBe(200);
    expect(r.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
  });

  it('includes the default process and nodejs metrics, on a registry of its own', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-metrics-'));
    const configPath = join(dir, 'c.yaml');
    writeFileSync(configPath, stringify({ ...LOOPBACK_LISTENERS, ...oneRoute('http://127.0.0.1:1') }));
    const app = await start({ configPath, env: {}, logger: pino({ level: 'silent' }), processMetrics: true, watch: false });
    track({ close: async () => (await app.close(), rmSync(dir, { recursive: true, force: true })) });
    const text = await scrape({ metricsUrl: `http://127.0.0.1:${app.metricsAddress.port}` });
    expect(text).toMatch(/^process_cpu_user_seconds_total /m);
    expect(text).toMatch(/^nodejs_eventloop_lag_seconds /m);
    expect(text).toMatch(/^# TYPE outrigger_requests_total counter/m);
    // Two instances in one process do not share series.
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    await req(px.url, { path: '/a', headers: { host: 'x' } });
    const again = await scrape({ metricsUrl: `http://127.0.0.1:${app.metricsAddress.port}` });
    // Its series exist at 0 from start-up, and the other instance's request moved none of them.
    const samples = again.split('\n').filter((l) => l.startsWith('outrigger_requests_total{'));
    expect(samples.length).toBeGreaterThan(0);
    for (const l of samples) expect(l).toMatch(/ 0$/);
  });
});
