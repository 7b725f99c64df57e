// The Grafana dashboard against a real Prometheus: a live proxy is scraped every second with
// the target labels a ServiceMonitor would add (namespace, pod), a scripted scenario makes
// the events the panels show happen, and then every panel target and every variable query
// of helm/outrigger/dashboards/outrigger.json is evaluated by Prometheus. A query Prometheus
// rejects fails, and so does one that comes back empty, or never above zero although the
// scenario made its event happen (a wrong metric, label or filter).
import { readFileSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { req } from '../helpers/http.js';
import { startPrometheus, regexEscape, sampleValues, PromApiError, type Prometheus, type PromSample } from '../helpers/prometheus.js';
import { startProxy, type TestProxy } from '../helpers/proxy.js';
import { ok, resetMidBody, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';
import { waitFor } from '../helpers/wait.js';
import { CHART } from './helpers.js';

interface Target {
  expr: string;
  refId: string;
}
interface Panel {
  type: string;
  title: string;
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  definition?: string;
}

const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards', 'outrigger.json'), 'utf8')) as { panels: Panel[]; templating: { list: Variable[] } };
const targets = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, refId: t.refId, expr: t.expr })));

/**
 * Panels whose event the scenario cannot make happen: their queries must still be valid and
 * return series (every one starts at 0), but may stay at 0.
 */
const MAY_STAY_ZERO: Record<string, string> = {
  'Internal errors': 'OUTRIGGER_INTERNAL is a bug in the proxy; nothing a client or upstream does can cause one',
  'Flapping breakers': 'flapping needs a breaker changing state in at least 30% of 21 samples; the scenario opens one breaker once',
};

const NAMESPACE = 'demo';
const POD = 'demo-pod-1';
const RATE_INTERVAL = '15s';
const INTERVAL = '5s';
const ROUTES = ['api', 'flaky', 'stingy', 'slow', 'held', 'ws'];

const backoff = { base: '1ms', max: '1ms' };
function proxyConfig(web: string, chat: string, slowTimeout = '300ms'): Record<string, unknown> {
  return {
    log: { level: 'warn' },
    upstreams: { web: { endpoints: [web] }, chat: { endpoints: [chat] } },
    // Only the WebSocket route takes upgrades, so only it has WebSocket series.
    defaults: { upgrades: [] },
    routes: [
      // 200s, an upstream 404, upstream 500s retried as 5xx, a response cut mid-body.
      { name: 'api', match: { pathPrefix: '/api' }, upstream: 'web', retry: { attempts: 2, on: ['gateway-error', '5xx'], backoff }, breaker: { consecutiveFailures: 100 } },
      // Upstream 503s: retried, then the breaker opens and the fallback answers.
      {
        name: 'flaky',
        match: { pathPrefix: '/flaky' },
        upstream: 'web',
        retry: { attempts: 2, backoff },
        breaker: { consecutiveFailures: 3, halfOpenAfter: '1h' },
        fallback: { on: ['breaker-open'], status: 200, body: 'fallback' },
      },
      // A retry budget of nothing: the first retry is refused.
      { name: 'stingy', match: { pathPrefix: '/stingy' }, upstream: 'web', retry: { attempts: 2, backoff, budget: { ratio: 0, minPerSecond: 0 } }, breaker: { enabled: false } },
      // An upstream that never answers: the route deadline fires.
      { name: 'slow', match: { pathPrefix: '/slow' }, upstream: 'web', timeout: slowTimeout, retry: { attempts: 0 }, breaker: { enabled: false } },
      // One request at a time, held by the upstream until the test lets it go: in flight, then overload.
      { name: 'held', match: { pathPrefix: '/held' }, upstream: 'web', timeout: '30s', retry: { attempts: 0 }, breaker: { enabled: false }, concurrency: { max: 1, queue: 0 } },
      // WebSocket only.
      { name: 'ws', match: { pathPrefix: '/ws', methods: ['GET'] }, upstream: 'chat', upgrades: ['websocket'] },
    ],
  };
}

/** Grafana's substitution of the dashboard variables (${name}, $name, [[name]]); an unknown one throws. */
function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (m, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c) as string;
    const v = vars[name];
    if (v === undefined) throw new Error(`unknown variable ${m} in ${expr}`);
    return v;
  });
}

/** Grafana's regex form of a multi-value variable: one value as is, several as (a|b). */
const multi = (values: string[]): string => (values.length === 1 ? regexEscape(values[0] as string) : `(${values.map(regexEscape).join('|')})`);

function parseLabelValues(definition: string): { selector: string; label: string } {
  const m = /^label_values\((.+),\s*([a-zA-Z_][a-zA-Z0-9_]*)\)$/.exec(definition.trim());
  if (!m) throw new Error(`not a label_values(selector, label) query: ${definition}`);
  return { selector: m[1] as string, label: m[2] as string };
}

describe('the Grafana dashboard on a real Prometheus', () => {
  let web: TestUpstream | undefined;
  let chat: WsUpstream | undefined;
  let px: TestProxy | undefined;
  let prom: Prometheus | undefined;
  const held: ServerResponse[] = [];
  /** Unix seconds: the range every target is evaluated over. */
  let rangeStart = 0;
  let rangeEnd = 0;
  const t0 = Date.now();
  let scenarioMs = 0;

  const P = (): Prometheus => prom as Prometheus;
  const sel = (metric: string, extra = ''): string => `${metric}{namespace="${NAMESPACE}", pod="${POD}"${extra ? `, ${extra}` : ''}}`;
  /** Waits until Prometheus has scraped a sample of `expr` at least `min`. */
  const scraped = (expr: string, min: number, what: string): Promise<PromSample[]> =>
    P().waitForQuery(expr, (s) => s.some((x) => Number(x.value?.[1]) >= min), what, 20_000);

  beforeAll(async () => {
    web = await startUpstream((q, res, n, body) => {
      const path = q.url ?? '';
      if (path.startsWith('/api/missing')) return ok('not here', 404)(q, res, n, body);
      if (path.startsWith('/api/err')) return ok('boom', 500)(q, res, n, body);
      if (path.startsWith('/api/trunc')) return resetMidBody(q, res, n, body);
      if (path.startsWith('/flaky') || path.startsWith('/stingy')) return ok('unavailable', 503)(q, res, n, body);
      if (path.startsWith('/slow')) return; // never answers
      if (path.startsWith('/held')) return void held.push(res);
      ok('fine')(q, res, n, body);
    });
    chat = await startWsUpstream();
    const cfg = proxyConfig(web.url, chat.url);
    px = await startProxy(cfg, { processMetrics: true, logLevel: 'warn' });
    // Before the first scrape, so the series of upstream-chosen codes (200) exist before the scenario.
    expect((await req(px.url, { path: '/api/ok' })).status).toBe(200);

    prom = await startPrometheus({
      targets: [{ address: new URL(px.metricsUrl).host, labels: { namespace: NAMESPACE, pod: POD } }],
      scrapeInterval: '1s',
    });
    // Two scrapes before any event, so rate() and increase() have the sample before it.
    await scraped(`count_over_time(${sel('outrigger_build_info')}[1m])`, 2, 'two scrapes of the proxy');
    rangeStart = Math.floor(Date.now() / 1000) - 3;
    const s0 = Date.now();

    // 1. Normal traffic, an upstream 4xx, a request no route matches.
    for (let i = 0; i < 10; i++) expect((await req(px.url, { path: `/api/ok/${i}` })).status).toBe(200);
    expect((await req(px.url, { path: '/api/missing' })).status).toBe(404);
    expect((await req(px.url, { path: '/nowhere' })).status).toBe(404);

    // 2. A rejected reload, then an applied one.
    px.writeConfig({ ...cfg, routes: [{ name: 'broken' }] });
    expect((await px.app.reload()).length).toBeGreaterThan(0);
    px.writeConfig(proxyConfig(web.url, chat.url, '350ms'));
    expect(await px.app.reload()).toEqual([]);

    // 3. Upstream 500s, retried (reason 5xx); a response the upstream cuts mid-body.
    for (let i = 0; i < 3; i++) expect((await req(px.url, { path: '/api/err' })).status).toBe(500);
    const cut = await req(px.url, { path: '/api/trunc' }).catch(() => null);
    expect(cut?.complete ?? false).toBe(false);

    // 4. Upstream 503s: 3 attempts (2 retries), the breaker opens; next, the fallback.
    expect((await req(px.url, { path: '/flaky' })).status).toBe(503);
    const fb = await req(px.url, { path: '/flaky' });
    expect([fb.status, fb.body]).toEqual([200, 'fallback']);

    // 5. The retry budget refuses the retry.
    expect((await req(px.url, { path: '/stingy' })).status).toBe(503);

    // 6. The route deadline.
    expect((await req(px.url, { path: '/slow' })).status).toBe(504);

    // 7. One request in flight (seen by Prometheus), a second refused by the concurrency limit.
    const first = req(px.url, { path: '/held/1' });
    await waitFor(() => held.length === 1, { timeout: 10_000, what: 'the held request upstream' });
    expect((await req(px.url, { path: '/held/2' })).status).toBe(503);
    await scraped(sel('outrigger_inflight_requests', 'route="held"'), 1, 'the held request in flight');
    const h = held[0] as ServerResponse;
    h.writeHead(200, { 'content-type': 'text/plain', 'content-length': '4' });
    h.end('done');
    expect((await first).status).toBe(200);

    // 8. A WebSocket accepted, open across a scrape, closed by the client.
    const ws = new WebSocket(`${px.url.replace('http://', 'ws://')}/ws/chat`);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const echo = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('hello');
    expect(await echo).toBe('hello');
    await scraped(sel('outrigger_websocket_connections', 'route="ws"'), 1, 'the open WebSocket');
    const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
    ws.close(1000, 'bye');
    await closed;
    scenarioMs = Date.now() - s0;

    // Everything counted has been scraped: the WebSocket close (the last event) is in Prometheus.
    await scraped(sel('outrigger_websocket_closed_total', 'route="ws", reason="client"'), 1, 'the WebSocket close');
    const after = Date.now() / 1000;
    await P().waitForQuery(`timestamp(${sel('outrigger_build_info')})`, (s) => s.some((x) => Number(x.value?.[1]) > after), 'a scrape after the scenario', 20_000);
    rangeEnd = Math.ceil(Date.now() / 1000);
  }, 90_000);

  afterAll(async () => {
    for (const r of held) r.destroy();
    await prom?.stop();
    await px?.close();
    await chat?.close();
    await web?.close();
    console.log(`dashboard-live: scenario ${scenarioMs}ms, total ${Date.now() - t0}ms`);
  }, 60_000);

  /** Current values of the variables, as Grafana resolves them with every value selected. */
  async function variableValues(): Promise<Record<string, string[]>> {
    const values: Record<string, string[]> = {};
    const vars: Record<string, string> = {};
    for (const v of dashboard.templating.list) {
      if (v.type !== 'query') continue;
      const { selector, label } = parseLabelValues(v.definition ?? '');
      const got = (await P().labelValues(label, [substitute(selector, vars)])).sort();
      values[v.name] = got;
      vars[v.name] = got.length ? multi(got) : '';
    }
    return values;
  }

  it('resolves every variable query on Prometheus, the WebSocket-only route included', async () => {
    const vals = await variableValues();
    expect(vals.namespace).toEqual([NAMESPACE]);
    expect(vals.pod).toEqual([POD]);
    expect(vals.route).toEqual([...ROUTES, '_unmatched'].sort());
    expect(vals.route).toContain('ws');
    expect(vals.breaker).toEqual([...(px as TestProxy).app.metrics.breakerStats.keys()].sort());
    expect(vals.breaker).toContain('flaky');
  }, 90_000);

  it('evaluates every panel target: valid PromQL, series returned, above zero when its event happened', async () => {
    expect(targets.length).toBeGreaterThan(20);
    for (const title of Object.keys(MAY_STAY_ZERO)) expect(targets.map((t) => t.panel), `allowlisted panel ${title}`).toContain(title);
    const vals = await variableValues();
    const vars: Record<string, string> = {
      datasource: 'prometheus',
      namespace: multi(vals.namespace ?? []),
      pod: multi(vals.pod ?? []),
      route: multi(vals.route ?? []),
      breaker: multi(vals.breaker ?? []),
      __rate_interval: RATE_INTERVAL,
      __interval: INTERVAL,
      __range: `${rangeEnd - rangeStart}s`,
      __range_s: String(rangeEnd - rangeStart),
    };
    const problems: string[] = [];
    for (const t of targets) {
      const name = `${t.panel} / ${t.refId}`;
      const expr = substitute(t.expr, vars);
      let values: number[];
      try {
        // A 0.25 s step, under the 1 s scrape interval: a gauge that was 1 for one scrape only
        // (the open WebSocket) holds between two samples less than 1 s apart when a loaded
        // machine delays a scrape, and a 1 s step can fall on either side of that gap.
        const r = await P().queryRange(expr, rangeStart, rangeEnd, 0.25);
        values = sampleValues(r);
        if (!(r.result as PromSample[]).length) {
          problems.push(`${name}: no series\n    ${expr}`);
          continue;
        }
      } catch (err) {
        problems.push(`${name}: ${err instanceof PromApiError ? 'rejected by Prometheus' : 'query failed'}: ${(err as Error).message}\n    ${expr}`);
        continue;
      }
      if (!values.some((v) => v > 0) && !(t.panel in MAY_STAY_ZERO)) problems.push(`${name}: never above 0 although the scenario made its event happen\n    ${expr}`);
      // Stat panels are instant queries: the same expression at the end of the range.
      try {
        const r = await P().query(expr, rangeEnd);
        if (r.resultType === 'vector' && !(r.result as PromSample[]).length) problems.push(`${name}: no series in an instant query\n    ${expr}`);
      } catch (err) {
        problems.push(`${name}: instant query failed: ${(err as Error).message}\n    ${expr}`);
      }
    }
    expect(problems, `${problems.join('\n')}\n--- prometheus log tail:\n${P().output().slice(-2000)}`).toEqual([]);
  }, 90_000);
});
