// The Grafana dashboard (helm/outrigger/dashboards/outrigger.json): its variables and panels,
// that every query reads only metrics and labels Outrigger really exports (the registry of
// src/admin/metrics.ts, prom-client's default process_/nodejs_ metrics included), that every
// query is scoped to the selected namespace and pods, and that a running proxy exports them.
// test/k8s/dashboard-live.test.ts runs every query on a real Prometheus.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify as stringifyYaml } from 'yaml';
import { Metrics } from '../../src/admin/metrics.js';
import { CHART, REPO, freePorts, httpGet, startProxy, type ProxyProcess } from './helpers.js';

type Dict = Record<string, unknown>;
interface Target extends Dict {
  expr: string;
  refId: string;
  legendFormat?: string;
  datasource?: unknown;
}
interface Panel extends Dict {
  type: string;
  title: string;
  id: number;
  gridPos: { h: number; w: number; x: number; y: number };
  targets?: Target[];
}
interface Variable extends Dict {
  name: string;
  type: string;
  definition?: string;
  query?: unknown;
  multi?: boolean;
  includeAll?: boolean;
}

const raw = readFileSync(join(CHART, 'dashboards', 'outrigger.json'), 'utf8');
const dashboard = JSON.parse(raw) as Dict & { panels: Panel[]; templating: { list: Variable[] } };
const panels = dashboard.panels.filter((p) => p.type !== 'row');
const vars = dashboard.templating.list;
const variable = (name: string): Variable | undefined => vars.find((v) => v.name === name);
const exprsOf = (p: Panel): string[] => (p.targets ?? []).map((t) => t.expr);
const allTargets = panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p, target: t })));
const allExprs = [...allTargets.map((t) => t.target.expr), ...vars.map((v) => v.definition ?? '')];
const METRIC_RE = /\b(?:outrigger|process|nodejs)_[a-zA-Z0-9_]+/g;
const queried = [...new Set(allExprs.flatMap((e) => e.match(METRIC_RE) ?? []))].sort();
const byTitle = (title: string): Panel => {
  const p = panels.find((x) => x.title === title);
  if (!p) throw new Error(`no panel titled ${title}`);
  return p;
};
const findPanels = (metric: string): Panel[] => panels.filter((p) => exprsOf(p).some((e) => new RegExp(`\\b${metric}\\b`).test(e)));
const DS = { type: 'prometheus', uid: '${datasource}' };

/** Labels Prometheus adds to every series of a target (the chart's ServiceMonitor/PodMonitor: namespace, pod; Prometheus: instance). */
const TARGET_LABELS = ['namespace', 'pod', 'instance'];

/** Every series name the proxy's registry serves, with its labels: the real registry, default metrics on. */
const EXPORTED: Map<string, readonly string[]> = (() => {
  const m = new Metrics(true);
  const out = new Map<string, readonly string[]>();
  // The duration histogram is registered as a view without labelNames; its declaration has them.
  const declared = new Map<string, readonly string[]>();
  for (const v of Object.values(m) as Array<{ name?: unknown; labelNames?: unknown }>) {
    if (v && typeof v.name === 'string' && Array.isArray(v.labelNames)) declared.set(v.name, v.labelNames as string[]);
  }
  for (const metric of m.registry.getMetricsAsArray() as unknown as Array<{ name: string; type?: string; labelNames?: readonly string[] }>) {
    const labels = metric.labelNames ?? declared.get(metric.name);
    if (!labels) throw new Error(`cannot tell the labels of ${metric.name}`);
    out.set(metric.name, labels);
    if (metric.type === 'histogram') {
      out.set(`${metric.name}_bucket`, [...labels, 'le']);
      out.set(`${metric.name}_sum`, labels);
      out.set(`${metric.name}_count`, labels);
    }
  }
  return out;
})();

/** The selectors metric{...} of an expression, with their matchers. */
function selectors(expr: string): Array<{ metric: string; matchers: Array<{ label: string; op: string; value: string }> }> {
  return [...expr.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\}/g)].map((m) => ({
    metric: m[1] as string,
    matchers: [...(m[2] as string).matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!=|!~|=)\s*"((?:[^"\\]|\\.)*)"/g)].map((x) => ({ label: x[1] as string, op: x[2] as string, value: x[3] as string })),
  }));
}

/** Labels named in by (...), without (...), on (...), ignoring (...), group_left/right (...). */
function groupingLabels(expr: string): string[][] {
  return [...expr.matchAll(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)/g)].map((m) =>
    (m[1] as string)
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

describe('the Grafana dashboard', () => {
  it('is valid dashboard JSON: uid, title, schemaVersion, time, unique ids, panels inside the 24-column grid without overlaps', () => {
    expect(dashboard.uid).toBe('outrigger');
    expect(dashboard.title).toBe('Outrigger');
    expect(typeof dashboard.schemaVersion).toBe('number');
    expect(dashboard.schemaVersion as number).toBeGreaterThanOrEqual(36);
    expect(dashboard.time).toEqual(expect.objectContaining({ from: expect.any(String), to: expect.any(String) }));
    expect(Array.isArray((dashboard.annotations as { list?: unknown }).list)).toBe(true);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of dashboard.panels) {
      expect(Number.isInteger(p.id), p.title).toBe(true);
      expect(p.title, `panel ${p.id}`).toBeTruthy();
      expect(p.gridPos.x + p.gridPos.w, p.title).toBeLessThanOrEqual(24);
      expect(p.gridPos.w * p.gridPos.h, p.title).toBeGreaterThan(0);
    }
    const boxes = dashboard.panels.map((p) => ({ t: p.title, ...p.gridPos }));
    for (let i = 0; i < boxes.length; i++) {
      for (let j = i + 1; j < boxes.length; j++) {
        const [a, b] = [boxes[i], boxes[j]] as [(typeof boxes)[number], (typeof boxes)[number]];
        const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
        expect(overlap, `${a.t} overlaps ${b.t}`).toBe(false);
      }
    }
    for (const p of panels) {
      const refIds = (p.targets ?? []).map((t) => t.refId);
      expect(refIds.length, `${p.title} has no target`).toBeGreaterThan(0);
      expect(new Set(refIds).size, p.title).toBe(refIds.length);
    }
  });

  it('has the datasource, namespace, pod, route and breaker variables', () => {
    expect(vars.map((v) => v.name)).toEqual(expect.arrayContaining(['datasource', 'namespace', 'pod', 'route', 'breaker']));
    expect(variable('datasource')).toMatchObject({ type: 'datasource', query: 'prometheus' });
    const defs: Record<string, string> = {
      namespace: 'label_values(outrigger_build_info, namespace)',
      pod: 'label_values(outrigger_build_info{namespace=~"$namespace"}, pod)',
      // outrigger_inflight_requests exists for every route from start-up (WebSocket-only ones included).
      route: 'label_values(outrigger_inflight_requests{namespace=~"$namespace", pod=~"$pod"}, route)',
      breaker: 'label_values(outrigger_breaker_state{namespace=~"$namespace", pod=~"$pod"}, breaker)',
    };
    for (const [name, def] of Object.entries(defs)) {
      const v = variable(name) as Variable;
      expect(v, name).toMatchObject({ type: 'query', definition: def, datasource: DS });
      expect((v.query as { query?: string }).query ?? v.query, name).toBe(def);
    }
    for (const name of ['pod', 'route', 'breaker']) expect(variable(name), name).toMatchObject({ multi: true, includeAll: true, allValue: '.*' });
  });

  it('uses the ${datasource} variable on every panel and every target', () => {
    for (const p of panels) {
      expect(p.datasource, p.title).toEqual(DS);
      for (const t of p.targets ?? []) expect(t.datasource, `${p.title} ${t.refId}`).toEqual(DS);
    }
    // No data source is named outright anywhere (it would break on another Grafana).
    const uids = [...raw.matchAll(/"uid":\s*"([^"]*)"/g)].map((m) => m[1]);
    expect(uids.filter((u) => u !== '${datasource}' && u !== '-- Grafana --' && u !== 'outrigger')).toEqual([]);
  });

  it('queries only metrics the proxy exports, each documented in the README', () => {
    expect(queried.length).toBeGreaterThan(20);
    const unknown = queried.filter((n) => !EXPORTED.has(n));
    expect(unknown, `not in the registry of src/admin/metrics.ts (or prom-client's defaults):\n${unknown.join('\n')}`).toEqual([]);
    const readme = readFileSync(join(REPO, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## Metrics'));
    const base = (n: string): string => n.replace(/_(bucket|sum|count)$/, '');
    for (const name of queried.filter((n) => n.startsWith('outrigger_'))) {
      expect(section, `${name} in README.md ## Metrics`).toMatch(new RegExp(`\\| \`(${name}|${base(name)})\` \\|`));
    }
  });

  it('scopes every query to the selected namespace and pods (and routes, breakers), with a selector on every metric', () => {
    for (const { panel, target } of allTargets) {
      const where = `${panel.title} ${target.refId}: ${target.expr}`;
      // Every metric name is followed by a selector: a bare name would read the whole cluster.
      for (const m of target.expr.matchAll(METRIC_RE)) expect(target.expr[(m.index ?? 0) + m[0].length], `${where}: ${m[0]} has no selector`).toBe('{');
      const sels = selectors(target.expr);
      expect(sels.length, where).toBeGreaterThan(0);
      for (const s of sels) {
        const labels = EXPORTED.get(s.metric) ?? [];
        const has = (label: string, v: string) => s.matchers.some((x) => x.label === label && x.op === '=~' && x.value === v);
        expect(has('namespace', '$namespace'), `${where}: ${s.metric} without namespace=~"$namespace"`).toBe(true);
        expect(has('pod', '$pod'), `${where}: ${s.metric} without pod=~"$pod"`).toBe(true);
        if (labels.includes('route')) expect(has('route', '$route'), `${where}: ${s.metric} without route=~"$route"`).toBe(true);
        if (labels.includes('breaker')) expect(has('breaker', '$breaker'), `${where}: ${s.metric} without breaker=~"$breaker"`).toBe(true);
      }
    }
  });

  it('names only labels the queried metrics carry, in selectors, groupings and legends', () => {
    for (const { panel, target } of allTargets) {
      const where = `${panel.title} ${target.refId}`;
      const metrics = target.expr.match(METRIC_RE) ?? [];
      const allowed = new Set<string>([...TARGET_LABELS, ...metrics.flatMap((m) => EXPORTED.get(m) ?? [])]);
      for (const s of selectors(target.expr)) {
        const own = new Set([...TARGET_LABELS, ...(EXPORTED.get(s.metric) ?? [])]);
        for (const x of s.matchers) expect([...own], `${where}: ${s.metric}{${x.label}}`).toContain(x.label);
      }
      const groups = groupingLabels(target.expr);
      for (const label of groups.flat()) expect([...allowed], `${where}: label ${label} in ${target.expr}`).toContain(label);
      // A legend can only show labels the outermost aggregation keeps.
      const legend = [...(target.legendFormat ?? '').matchAll(/\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}/g)].map((m) => m[1] as string);
      if (legend.length) {
        expect(groups.length, `${where}: a legend {{...}} on an expression without by (...)`).toBeGreaterThan(0);
        for (const l of legend) expect(groups[0], `${where}: legend {{${l}}} not kept by the outermost by (...)`).toContain(l);
      }
    }
  });

  it('keeps the panels on traffic, errors, latency, retries, breakers, fallbacks, timeouts, WebSockets, reloads, internal errors and events', () => {
    const titles = panels.map((p) => p.title);
    expect(titles).toEqual(expect.arrayContaining(['Request rate by route', 'Error rate by route', 'Latency p50 / p99 by route']));
    expect(exprsOf(byTitle('Error rate by route'))[0]).toMatch(/code=~"5\.\."/);
    expect(exprsOf(byTitle('Latency p50 / p99 by route')).join('\n')).toMatch(/histogram_quantile\(0\.5,[\s\S]*histogram_quantile\(0\.99,/);
    for (const m of [
      'outrigger_requests_total',
      'outrigger_request_duration_seconds_bucket',
      'outrigger_upstream_attempts_total',
      'outrigger_retries_total',
      'outrigger_retry_budget_exhausted_total',
      'outrigger_breaker_state',
      'outrigger_breaker_transitions_total',
      'outrigger_breaker_rejections_total',
      'outrigger_breaker_flapping',
      'outrigger_fallbacks_total',
      'outrigger_timeouts_total',
      'outrigger_overload_rejections_total',
      'outrigger_responses_truncated_total',
      'outrigger_internal_errors_total',
      'outrigger_inflight_requests',
      'outrigger_websocket_connections',
      'outrigger_websocket_upgrades_total',
      'outrigger_websocket_closed_total',
      'outrigger_config_reloads_total',
      'outrigger_config_last_reload_success',
      'outrigger_events_total',
      'outrigger_build_info',
    ]) {
      expect(findPanels(m).length, m).toBeGreaterThan(0);
    }
    expect(exprsOf(findPanels('outrigger_fallbacks_total')[0] as Panel)[0]).toMatch(/by \([^)]*\btrigger\b[^)]*\)/);
    expect(exprsOf(findPanels('outrigger_events_total')[0] as Panel)[0]).toMatch(/by \(kind, severity\)/);
    const breaker = findPanels('outrigger_breaker_state').filter((p) => p.type === 'state-timeline');
    expect(breaker).toHaveLength(1);
    const mappings = JSON.stringify(((breaker[0] as Panel).fieldConfig as { defaults: { mappings: unknown } }).defaults.mappings);
    for (const state of ['closed', 'half-open', 'open', 'isolated']) expect(mappings).toContain(`"${state}"`);
  });

  it('has a per-pod view: requests, errors and breaker state per pod', () => {
    const perPod = (re: RegExp) => panels.filter((p) => exprsOf(p).some((e) => re.test(e)));
    expect(perPod(/^sum by \(pod\) \(rate\(outrigger_requests_total\{/).length).toBeGreaterThanOrEqual(1);
    expect(exprsOf(byTitle('Error rate per pod'))[0]).toMatch(/^sum by \(pod\) .*code=~"5\.\."/);
    expect(exprsOf(byTitle('Breakers not closed per pod'))[0]).toMatch(/^sum by \(pod\) \(outrigger_breaker_state\{/);
    expect(exprsOf(byTitle('Breaker state'))[0]).toMatch(/^max by \(pod, breaker\)/);
  });

  it('has CPU, resident memory and event-loop lag panels per pod, on the Outrigger endpoint only', () => {
    const cpu = exprsOf(byTitle('CPU per pod'))[0] as string;
    expect(cpu).toMatch(/rate\(process_cpu_seconds_total\{[^}]*\}\[\$__rate_interval\]\)/);
    expect(exprsOf(byTitle('Memory per pod'))[0]).toMatch(/process_resident_memory_bytes\{/);
    expect(exprsOf(byTitle('Event-loop lag p99 per pod'))[0]).toMatch(/nodejs_eventloop_lag_p99_seconds\{/);
    // process_*/nodejs_* of an application container in the same pod must not be summed in.
    for (const t of ['CPU per pod', 'Memory per pod', 'Event-loop lag p99 per pod']) {
      for (const e of exprsOf(byTitle(t))) expect(e, t).toMatch(/ and on \(namespace, pod, instance\) outrigger_build_info\{/);
    }
    expect(byTitle('CPU per pod').fieldConfig).toMatchObject({ defaults: { unit: 'percentunit' } });
    expect(byTitle('Memory per pod').fieldConfig).toMatchObject({ defaults: { unit: 'bytes' } });
    expect(byTitle('Event-loop lag p99 per pod').fieldConfig).toMatchObject({ defaults: { unit: 's' } });
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

  it('are all exported by a running proxy (dist/main.js, default process metrics on)', () => {
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
