// The Grafana dashboard (helm/outrigger/dashboards/outrigger.json): its panels, and that
// every metric it queries is one a running proxy really exports on /metrics.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { CHART, freePorts, httpGet, startProxy, type ProxyProcess } from './helpers.js';

type Dict = Record<string, unknown>;
interface Panel extends Dict {
  type: string;
  title: string;
  id: number;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Array<{ expr: string }>;
}

const dashboard = JSON.parse(readFileSync(join(CHART, 'dashboards', 'outrigger.json'), 'utf8')) as Dict & { panels: Panel[] };
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const exprsOf = (p: Panel): string[] => (p.targets ?? []).map((t) => t.expr);
const allExprs = [
  ...panels.flatMap(exprsOf),
  ...((dashboard.templating as { list: Array<{ definition?: string }> }).list.map((v) => v.definition ?? '')),
];
const METRIC_RE = /\boutrigger_[a-z0-9_]+/g;
const queried = [...new Set(allExprs.flatMap((e) => e.match(METRIC_RE) ?? []))].sort();

/** The metric names of the contract (issues 2 and 3); histograms by base name. */
const CONTRACT = {
  outrigger_requests_total: ['route', 'method', 'code'],
  outrigger_request_duration_seconds: ['route'],
  outrigger_upstream_attempts_total: ['route', 'upstream', 'outcome'],
  outrigger_retries_total: ['route', 'reason'],
  outrigger_retry_budget_exhausted_total: ['route'],
  outrigger_breaker_state: ['breaker', 'state'],
  outrigger_breaker_transitions_total: ['breaker', 'to'],
  outrigger_breaker_rejections_total: ['breaker'],
  outrigger_fallbacks_total: ['route', 'trigger'],
  outrigger_timeouts_total: ['route', 'kind'],
  outrigger_overload_rejections_total: ['route'],
  outrigger_inflight_requests: ['route'],
  outrigger_websocket_connections: ['route'],
  outrigger_websocket_upgrades_total: ['route', 'outcome'],
  outrigger_websocket_closed_total: ['route', 'reason'],
  outrigger_config_reloads_total: ['result'],
  outrigger_build_info: ['version', 'node'],
  outrigger_config_last_reload_success: [],
  outrigger_config_last_reload_timestamp_seconds: [],
} as const;
const baseName = (n: string): string => n.replace(/_(bucket|sum|count)$/, '');
const findPanels = (metric: string): Panel[] => panels.filter((p) => exprsOf(p).some((e) => e.includes(metric)));

describe('the Grafana dashboard', () => {
  it('queries only metrics of the contract, and labels they carry', () => {
    expect(queried.length).toBeGreaterThan(10);
    for (const name of queried) {
      const base = name in CONTRACT ? name : baseName(name);
      expect(Object.keys(CONTRACT), name).toContain(base);
      if (base !== name) expect(base, `${name} is a histogram series`).toBe('outrigger_request_duration_seconds');
    }
    // Labels named in by (...) clauses and selectors must be labels of the metrics queried.
    for (const p of panels) {
      for (const expr of exprsOf(p)) {
        const metrics = (expr.match(METRIC_RE) ?? []).map((n) => (n in CONTRACT ? n : baseName(n))) as Array<keyof typeof CONTRACT>;
        const allowed = new Set<string>(['le', ...metrics.flatMap((m) => CONTRACT[m])]);
        const used = [
          ...[...expr.matchAll(/\bby \(([^)]*)\)/g)].flatMap((m) => (m[1] as string).split(',').map((s) => s.trim())),
          ...[...expr.matchAll(/[{,]\s*([a-z_]+)\s*(?:=~|!=|!~|=)/g)].map((m) => m[1] as string),
        ];
        for (const label of used) expect([...allowed], `${p.title}: label ${label} in ${expr}`).toContain(label);
      }
    }
  });

  it('has the panels the issue asks for', () => {
    const titles = panels.map((p) => p.title);
    expect(titles).toEqual(expect.arrayContaining(['Request rate by route', 'Error rate by route', 'Latency p50 / p99 by route']));
    const latency = panels.find((p) => p.title === 'Latency p50 / p99 by route') as Panel;
    expect(exprsOf(latency).join('\n')).toMatch(/histogram_quantile\(0\.5,[\s\S]*histogram_quantile\(0\.99,/);
    for (const m of [
      'outrigger_retries_total',
      'outrigger_retry_budget_exhausted_total',
      'outrigger_fallbacks_total',
      'outrigger_inflight_requests',
      'outrigger_overload_rejections_total',
      'outrigger_websocket_connections',
    ]) {
      expect(findPanels(m).length, m).toBeGreaterThan(0);
    }
    expect(exprsOf(findPanels('outrigger_fallbacks_total')[0] as Panel)[0]).toMatch(/by \(trigger\)/);
    const breaker = findPanels('outrigger_breaker_state').filter((p) => p.type === 'state-timeline');
    expect(breaker).toHaveLength(1);
    const mappings = JSON.stringify(((breaker[0] as Panel).fieldConfig as { defaults: { mappings: unknown } }).defaults.mappings);
    for (const state of ['closed', 'half-open', 'open', 'isolated']) expect(mappings).toContain(`"${state}"`);
  });

  it('is well-formed: unique ids, a datasource variable, panels inside the 24-column grid', () => {
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(dashboard.uid).toBe('outrigger');
    const vars = (dashboard.templating as { list: Array<{ name: string; type: string }> }).list;
    expect(vars).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource' }));
    for (const p of dashboard.panels) {
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      if (p.type !== 'row') expect(p.datasource, p.title).toEqual({ type: 'prometheus', uid: '${datasource}' });
    }
  });
});

describe('the metrics the dashboard queries', () => {
  let upstream: http.Server | undefined;
  let proxy: ProxyProcess | undefined;
  let metricsText = '';
  const tmp = mkdtempSync(join(tmpdir(), 'outrigger-dash-'));

  beforeAll(async () => {
    upstream = http.createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok');
    });
    await new Promise<void>((ok) => upstream?.listen(0, '127.0.0.1', () => ok()));
    const upPort = (upstream.address() as AddressInfo).port;
    // Free ports are probed and released, so another process may take one first: retry.
    let ports: [number, number, number] = [0, 0, 0];
    for (let attempt = 1; !proxy; attempt++) {
      ports = (await freePorts(3)) as [number, number, number];
      const [proxyPort, adminPort, metricsPort] = ports;
      const file = join(tmp, 'outrigger.yaml');
      writeFileSync(
        file,
        stringifyYaml({
          listen: `127.0.0.1:${proxyPort}`,
          admin: { listen: `127.0.0.1:${adminPort}` },
          metrics: { listen: `127.0.0.1:${metricsPort}` },
          log: { level: 'warn' },
          drain: { delay: 0, timeout: '1s' },
          upstreams: { up: { endpoints: [`http://127.0.0.1:${upPort}`] } },
          routes: [{ name: 'dash', match: { pathPrefix: '/' }, upstream: 'up' }],
        }),
      );
      try {
        proxy = await startProxy(file, adminPort);
      } catch (err) {
        if (attempt >= 3 || !/EADDRINUSE/.test((err as Error).message)) throw err;
      }
    }
    const [proxyPort, , metricsPort] = ports;
    const r = await httpGet(`http://127.0.0.1:${proxyPort}/hello`);
    expect(r.status, proxy.output()).toBe(200);
    const m = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(m.status).toBe(200);
    metricsText = m.body;
  }, 60_000);

  afterAll(async () => {
    await proxy?.stop();
    await new Promise<void>((ok) => (upstream ? upstream.close(() => ok()) : ok()));
    rmSync(tmp, { recursive: true, force: true });
  }, 30_000);

  it('are all exported by a running proxy', () => {
    const exported = new Set<string>();
    for (const line of metricsText.split('\n')) {
      const type = /^# TYPE (\S+) (\S+)/.exec(line);
      if (type) {
        const [, name, kind] = type as unknown as [string, string, string];
        exported.add(name);
        if (kind === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(name + s);
        continue;
      }
      const sample = /^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]/.exec(line);
      if (sample) exported.add(sample[1] as string);
    }
    const missing = queried.filter((n) => !exported.has(n));
    expect(missing, `missing from /metrics:\n${missing.join('\n')}`).toEqual([]);
  });
});
