import { describe, expect, it } from 'vitest';
import { failFirst, ok, startUpstream, type Behaviour } from '../helpers/upstream.js';
import { metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();

async function getJson<T = Record<string, unknown>>(base: string, path: string): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; json: T }> {
  const r = await req(base, { path });
  return { status: r.status, headers: r.headers, json: JSON.parse(r.body) as T };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

interface RouteStats {
  name: string;
  requests: number;
  rps: number;
  errorRatio: number;
  health: string;
  latencyMs: { p50: number | null; p99: number | null };
  retriesPerSecond: number;
  retryBudget: { enabled: boolean; usePercent: number };
  fallbacksPerSecond: Record<string, number>;
  inflight: number;
  concurrency: { max: number; queue: number };
  breaker: { name: string; state: string; secondsInState: number; lastTransition: { from: string; to: string } | null; flapping: unknown } | null;
  sparkline: { rps: number[]; errorRatio: number[] };
}

describe('GET /stats', () => {
  it('reports the last minute of a route from the rolling windows', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url, { concurrency: { max: 7 } })));
    for (let i = 0; i < 12; i++) expect((await req(px.url, { path: '/x' })).status).toBe(200);
    const { status, json } = await getJson<{ version: string; node: string; config: { hash: string }; draining: boolean; routes: RouteStats[] }>(px.adminUrl, '/stats');
    expect(status).toBe(200);
    expect(json.node).toBe(process.version);
    expect(json.version).toMatch(/^\d+\.\d+\.\d+/);
    expect(json.config.hash).toBe(px.app.state.runtime.loaded.hash);
    expect(json.draining).toBe(false);
    const r = json.routes[0] as RouteStats;
    expect(r.name).toBe('r1');
    expect(r.requests).toBe(12);
    expect(r.rps).toBeGreaterThan(0);
    expect(r.errorRatio).toBe(0);
    expect(r.latencyMs.p50).toBeGreaterThan(0);
    expect(r.latencyMs.p99).toBeGreaterThanOrEqual(r.latencyMs.p50 as number);
    expect(r.concurrency).toEqual({ max: 7, queue: 0 });
    expect(r.inflight).toBe(0);
    expect(r.breaker).toMatchObject({ name: 'r1', state: 'closed', lastTransition: null, flapping: null });
    expect(r.fallbacksPerSecond).toHaveProperty('breaker-open', 0);
    expect(r.sparkline.rps).toHaveLength(30);
    expect((r.sparkline.rps.at(-1) ?? 0) + (r.sparkline.rps.at(-2) ?? 0)).toBeGreaterThan(0);
  });
});

describe('GET /stats under failure', () => {
  it('counts retries, retry budget use and fallbacks by trigger', async () => {
    const up = track(await startUpstream(ok('no', 503)));
    const px = track(
      await startProxy(oneRoute(up.url, { retry: { attempts: 1, backoff: { base: '1ms', max: '1ms' } }, breaker: { enabled: false }, fallback: { on: ['5xx'], status: 200, body: 'cached' } })),
    );
    for (let i = 0; i < 10; i++) expect((await req(px.url, { path: '/' })).body).toBe('cached');
    const { json } = await getJson<{ routes: RouteStats[] }>(px.adminUrl, '/stats');
    const r = json.routes[0] as RouteStats & { retryBudget: { used: number; allowed: number } };
    expect(r.requests).toBe(10);
    // The fallback answered 200: not an error.
    expect(r.errorRatio).toBe(0);
    expect(r.retriesPerSecond).toBeGreaterThan(0);
    expect(r.retryBudget.used).toBe(10);
    // The floor of 10 retries/s over the 10 s window allows 100: 10% used.
    expect(r.retryBudget.allowed).toBe(100);
    expect(r.retryBudget.usePercent).toBe(10);
    expect(r.fallbacksPerSecond['5xx']).toBeGreaterThan(0);
    expect(r.fallbacksPerSecond['timeout']).toBe(0);
    expect(r.breaker).toBeNull();
  });
});

describe('events and health levels', () => {
  it('raises breaker and health events, logs them, counts them, and /health reports the worst level', async () => {
    const up = track(await startUpstream(ok('no', 503)));
    const px = track(
      await startProxy(
        oneRoute(up.url, { retry: { attempts: 0 }, breaker: { consecutiveFailures: 3, halfOpenAfter: '60s' }, health: { errorRatio: { minRequests: 3 } } }),
      ),
    );
    for (let i = 0; i < 6; i++) await req(px.url, { path: '/' });
    const ev = await until('events', async () => {
      const { json } = await getJson<{ events: Array<{ kind: string; severity: string; breaker?: string; route?: string; count: number }> }>(px.adminUrl, '/events');
      return json.events.some((e) => e.kind === 'route_health') ? json.events : undefined;
    });
    expect(ev.find((e) => e.kind === 'breaker_opened')).toMatchObject({ severity: 'error', breaker: 'r1', count: 1 });
    expect(ev.find((e) => e.kind === 'route_health')).toMatchObject({ severity: 'critical', route: 'r1' });
    expect(px.logs.some((l) => l.event === 'breaker_opened' && l.level === 'error')).toBe(true);
    expect(await metricValue(px.metricsUrl, 'outrigger_events_total', { kind: 'breaker_opened', severity: 'error' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_events_total', { kind: 'internal_error', severity: 'critical' })).toBe(0);

    const health = await getJson<{ level: string; routes: Array<{ route: string; level: string }>; flapping: unknown[] }>(px.adminUrl, '/health');
    expect(health.status).toBe(200);
    expect(health.json.level).toBe('critical');
    expect(health.json.routes).toEqual([expect.objectContaining({ route: 'r1', level: 'critical' })]);
    expect(health.json.flapping).toEqual([]);
    expect((await getJson(px.adminUrl, '/livez')).status).toBe(200);

    const errs = await getJson<{ events: Array<{ severity: string }> }>(px.adminUrl, '/events?severity=critical');
    expect(errs.json.events.length).toBeGreaterThan(0);
    expect(errs.json.events.every((e) => e.severity === 'critical')).toBe(true);
    const later = await getJson<{ events: unknown[] }>(px.adminUrl, `/events?since=${Date.now() + 60_000}`);
    expect(later.json.events).toEqual([]);
    expect((await getJson(px.adminUrl, '/events?severity=loud')).status).toBe(400);
    expect((await getJson(px.adminUrl, '/events?since=yesterday')).status).toBe(400);

    // Admin reset: a breaker_reset event.
    expect((await req(px.adminUrl, { method: 'POST', path: '/breakers/r1/reset' })).status).toBe(200);
    const after = await getJson<{ events: Array<{ kind: string }> }>(px.adminUrl, '/events');
    expect(after.json.events.map((e) => e.kind)).toEqual(expect.arrayContaining(['breaker_reset', 'breaker_closed']));
  });

  it('puts a route at warning between the thresholds, per-route overrides applied', async () => {
    const up = track(await startUpstream(failFirst(2)));
    const px = track(await startProxy(oneRoute(up.url, { retry: { attempts: 0 }, health: { errorRatio: { minRequests: 10 } } })));
    for (let i = 0; i < 20; i++) await req(px.url, { path: '/' });
    // 2 of 20 failed: 10%, at or above warning (5%), below critical (25%).
    const h = await getJson<{ level: string; status: string; routes: Array<{ route: string; level: string; errorRatio: number; requests: number }> }>(px.adminUrl, '/health');
    expect(h.json.routes).toEqual([{ route: 'r1', level: 'warning', errorRatio: 0.1, requests: 20 }]);
    expect(h.json.level).toBe('warning');
    const ev = await until('route_health event', async () => {
      const { json } = await getJson<{ events: Array<{ kind: string; severity: string; message: string }> }>(px.adminUrl, '/events?severity=warning');
      return json.events.find((e) => e.kind === 'route_health');
    });
    // The level is evaluated every second, so the event may come from part-way through the 20.
    expect(ev.severity).toBe('warning');
    expect(ev.message).toMatch(/^route error ratio warning: [\d.]+% of \d+ requests failed$/);
    expect(await metricValue(px.metricsUrl, 'outrigger_events_total', { kind: 'route_health', severity: 'warning' })).toBe(1);
  });

  it('rejects a config whose warning is above critical or flapping.low above high', async () => {
    const { loadConfigText, ConfigError } = await import('../../src/config/load.js');
    const bad = 'routes: [{ name: r, upstream: u, health: { errorRatio: { warning: 0.5, critical: 0.1 } } }]\nupstreams: { u: { endpoints: ["http://127.0.0.1:1"] } }\nflapping: { high: 10, low: 20 }\n';
    let err: unknown;
    try {
      loadConfigText(bad, 'x.yaml');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as InstanceType<typeof ConfigError>).problems).toEqual([
      'flapping.low: 20 is above flapping.high (10)',
      'routes[0].health.errorRatio: warning (0.5) is above critical (0.1)',
    ]);
    const good = loadConfigText('routes: [{ name: r, upstream: u, health: { errorRatio: { critical: 0.5 } } }]\nupstreams: { u: { endpoints: ["http://127.0.0.1:1"] } }\n', 'x.yaml');
    expect(good.config.routes[0]?.health.errorRatio).toEqual({ warning: 0.05, critical: 0.5, window: 60_000, minRequests: 20 });
    expect(good.config.flapping).toEqual({ interval: 10_000, high: 30, low: 15, damp: false, dampFactor: 4 });
    expect(good.config.events).toEqual({ capacity: 1000, coalesce: 10_000 });
  });
});

describe('breaker flapping', () => {
  it('flags a breaker whose upstream goes up and down, then clears it once the upstream is stable', async () => {
    let down = false;
    const behave: Behaviour = (rq, res, n) => ok(down ? 'down' : 'up', down ? 503 : 200)(rq, res, n, '');
    const up = track(await startUpstream(behave));
    const px = track(
      await startProxy(
        oneRoute(up.url, { retry: { attempts: 0 }, breaker: { consecutiveFailures: 1, halfOpenAfter: '50ms' } }, { flapping: { interval: '100ms', damp: true, dampFactor: 2 } }),
        { logLevel: 'warn' },
      ),
    );
    let stop = false;
    const traffic = (async () => {
      for (let i = 0; i < 5000 && !stop; i++) {
        await req(px.url, { path: '/' }).catch(() => undefined);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();
    const flipper = setInterval(() => (down = !down), 250);
    try {
      const flagged = await until('flapping flagged', async () => {
        const { json } = await getJson<{ flapping: Array<{ breaker: string; percent: number; pattern: string; since: string }> }>(px.adminUrl, '/health');
        return json.flapping.length > 0 ? json.flapping : undefined;
      });
      expect(flagged[0]).toMatchObject({ breaker: 'r1' });
      expect(flagged[0]?.percent).toBeGreaterThanOrEqual(30);
      expect(['alternating', 'cycle', 'runaway', 'irregular']).toContain(flagged[0]?.pattern);
      expect(await metricValue(px.metricsUrl, 'outrigger_breaker_flapping', { breaker: 'r1' })).toBe(1);
      // Damping doubles the open time while flapping.
      expect(px.app.state.runtime.breaker('r1')?.dampFactor).toBe(2);

      clearInterval(flipper);
      down = false;
      await until('flapping cleared', async () => {
        const { json } = await getJson<{ flapping: unknown[] }>(px.adminUrl, '/health');
        return json.flapping.length === 0;
      });
      expect(await metricValue(px.metricsUrl, 'outrigger_breaker_flapping', { breaker: 'r1' })).toBe(0);
      expect(px.app.state.runtime.breaker('r1')?.dampFactor).toBe(1);
      const { json } = await getJson<{ events: Array<{ kind: string }> }>(px.adminUrl, '/events?severity=info');
      expect(json.events.map((e) => e.kind)).toEqual(expect.arrayContaining(['breaker_flapping_started', 'breaker_flapping_stopped']));
    } finally {
      clearInterval(flipper);
      stop = true;
      await traffic;
    }
  }, 60_000);
});

describe('GET / (status page document)', () => {
  it('is one self-contained HTML document whose inline style and script carry the CSP nonce', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    const a = await req(px.adminUrl, { path: '/' });
    const b = await req(px.adminUrl, { path: '/' });
    expect(a.status).toBe(200);
    expect(a.headers['content-type']).toBe('text/html; charset=utf-8');
    const csp = String(a.headers['content-security-policy']);
    const nonce = /script-src 'nonce-([^']+)'/.exec(csp)?.[1];
    expect(nonce).toBeDefined();
    expect(csp).toContain(`style-src 'nonce-${nonce}'`);
    expect(csp).toContain("connect-src 'self'");
    expect(String(b.headers['content-security-policy'])).not.toContain(nonce as string);
    expect(a.body).toContain(`<script nonce="${nonce}">`);
    expect(a.body).toContain(`<style nonce="${nonce}">`);
    expect(a.body.match(/<script/g)).toHaveLength(1);
    // No external asset: no src/href to another origin, no @import or url() fetches.
    expect(a.body).not.toMatch(/(src|href)="(https?:)?\/\//);
    expect(a.body).not.toMatch(/@import|url\(/);
    const head = await req(px.adminUrl, { method: 'HEAD', path: '/' });
    expect(head.status).toBe(200);
    expect(head.body).toBe('');
  });
});

describe('reload and drain events', () => {
  it('records config_reload_succeeded, config_reload_failed and drain_started', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url, {}, { drain: { delay: 0, timeout: 1000 } })));
    px.writeConfig(oneRoute(up.url, { timeout: '3s' }, { drain: { delay: 0, timeout: 1000 } }));
    expect(await px.app.reload()).toEqual([]);
    px.writeConfig({ routes: 'nope' });
    expect((await px.app.reload()).length).toBeGreaterThan(0);
    const stats = await getJson<{ config: { lastReload: { result: string; problems: string[] } } }>(px.adminUrl, '/stats');
    expect(stats.json.config.lastReload.result).toBe('rejected');
    await px.app.drain();
    const kinds = px.app.metrics.events.list().map((e) => `${e.kind}/${e.severity}`);
    expect(kinds).toEqual(['config_reload_succeeded/info', 'config_reload_failed/error', 'drain_started/info']);
    expect(px.logs.filter((l) => l.event === 'drain_started')).toHaveLength(1);
  });
});

describe('response_truncated', () => {
  it('is raised when the upstream breaks off mid-body', async () => {
    const { resetMidBody } = await import('../helpers/upstream.js');
    const up = track(await startUpstream(resetMidBody));
    const px = track(await startProxy(oneRoute(up.url, { retry: { attempts: 0 } })));
    await req(px.url, { path: '/' }).catch(() => undefined);
    const ev = await until('response_truncated', async () => px.app.metrics.events.list().find((e) => e.kind === 'response_truncated'));
    expect(ev).toMatchObject({ severity: 'error', route: 'r1' });
    expect(await metricValue(px.metricsUrl, 'outrigger_events_total', { kind: 'response_truncated', severity: 'error' })).toBe(1);
  });
});
