// The Helm chart (helm/outrigger): its values against values.schema.json, the embedded
// Outrigger config against `outrigger check`, and the templates rendered with a small
// Go-template evaluator (Helm itself cannot be installed here; CI on GitHub runs
// helm lint, helm template and kubeconform, see .github/workflows/chart.yml).
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { configSchema } from '../../src/config/schema.js';
import { chartValues, parseChartTemplates, renderChart, type Rendered } from './helm-render.js';
import { CHART, compileSchema, MAIN_JS, REPO, requireBuild } from './helpers.js';

type Dict = Record<string, unknown>;
type Container = Dict & { name: string; env?: Dict[]; ports?: Dict[]; volumeMounts?: Dict[]; securityContext?: Dict };
type PodSpec = Dict & { containers: Container[]; initContainers?: Container[]; volumes: Dict[]; terminationGracePeriodSeconds: number };

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Dict;
const defaults = chartValues(CHART);
const tmp = mkdtempSync(join(tmpdir(), 'outrigger-chart-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const byKind = (r: Rendered, kind: string): Dict[] => r.docs.filter((d) => d.kind === kind);
const one = (r: Rendered, kind: string): Dict => {
  const docs = byKind(r, kind);
  expect(docs, `exactly one ${kind}`).toHaveLength(1);
  return docs[0] as Dict;
};
const podSpec = (r: Rendered): PodSpec => ((one(r, 'Deployment').spec as Dict).template as { spec: PodSpec }).spec;
const sidecarOf = (spec: PodSpec): Container => {
  const all = [...(spec.initContainers ?? []), ...spec.containers];
  const c = all.find((x) => x.name === 'outrigger');
  expect(c, 'the outrigger container').toBeDefined();
  return c as Container;
};

describe('values.schema.json', () => {
  const validate = compileSchema(schema);

  it('accepts the default values', () => {
    const ok = validate(defaults);
    expect(validate.errors ?? [], JSON.stringify(validate.errors, null, 2)).toEqual([]);
    expect(ok).toBe(true);
  });

  it('rejects typos and wrong types anywhere the chart defines an object', () => {
    const bad: Dict[] = [
      { sidecarr: {} },
      { sidecar: { nativ: true } },
      { sidecar: { probes: { liveness: { enabled: true, period: 3 } } } },
      { demo: { image: { tagg: 'x' } } },
      { metrics: { podMonitor: { enable: true } } },
      { config: { routez: [] } },
      { config: { drain: { delay: 'soon' } } },
      { sidecar: { ports: { admin: 'admin' } } },
      { terminationGracePeriodSeconds: -1 },
      { dashboard: { labels: { grafana_dashboard: 1 } } },
    ];
    for (const over of bad) {
      expect(validate(chartValues(CHART, over)), JSON.stringify(over)).toBe(false);
    }
  });

  it('sets additionalProperties: false on every object it defines', () => {
    const loose: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (typeof node !== 'object' || node === null) return;
      const n = node as Dict;
      if (n.properties) {
        if (n.additionalProperties !== false) loose.push(path || '(root)');
        for (const [k, v] of Object.entries(n.properties as Dict)) walk(v, path ? `${path}.${k}` : k);
      }
      for (const key of ['anyOf', 'oneOf', 'allOf'] as const) for (const s of (n[key] as unknown[] | undefined) ?? []) walk(s, path);
      if (n.items) walk(n.items, `${path}[]`);
    };
    walk(schema, '');
    expect(loose).toEqual([]);
  });

  it('lists exactly the top-level keys of the Outrigger config schema under config', () => {
    const chartKeys = Object.keys(((schema.properties as Dict).config as { properties: Dict }).properties).sort();
    expect(chartKeys).toEqual(Object.keys(configSchema.shape).sort());
  });
});

/** Runs `outrigger check` on a config text; returns its one-line summary or throws with its output. */
function outriggerCheck(name: string, text: string): string {
  requireBuild();
  const file = join(tmp, name);
  writeFileSync(file, text);
  try {
    return execFileSync(process.execPath, [MAIN_JS, 'check', file], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    throw new Error(`outrigger check exited ${e.status}:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

describe('the default Outrigger config in values.yaml', () => {
  it('passes `outrigger check`', () => {
    const out = outriggerCheck('values-config.yaml', stringifyYaml(defaults.config));
    expect(out.trim().split('\n')).toHaveLength(1);
  }, 60_000);

  it('passes `outrigger check` as the chart renders it into the ConfigMap', () => {
    const cm = renderChart(CHART).docs.find((d) => d.kind === 'ConfigMap') as Dict;
    outriggerCheck('rendered.yaml', (cm.data as Record<string, string>)['outrigger.yaml'] as string);
  }, 60_000);

  it('points the demo upstream at the demo app port and keeps listen ports equal to sidecar.ports', () => {
    const cfg = defaults.config as Dict;
    const demo = defaults.demo as Dict;
    const ports = (defaults.sidecar as Dict).ports as Dict;
    expect((((cfg.upstreams as Dict).app as Dict).endpoints as string[])[0]).toBe(`http://127.0.0.1:${String(demo.port)}`);
    expect(cfg.listen).toBe(`0.0.0.0:${String(ports.proxy)}`);
    expect((cfg.admin as Dict).listen).toBe(`0.0.0.0:${String(ports.admin)}`);
    expect((cfg.metrics as Dict).listen).toBe(`0.0.0.0:${String(ports.metrics)}`);
  });
});

describe('docs/kubernetes.md', () => {
  it('has a minimal example whose manifests parse and whose config passes `outrigger check`', () => {
    const md = readFileSync(join(REPO, 'docs', 'kubernetes.md'), 'utf8');
    const block = /```yaml\n([\s\S]*?)```/.exec(md)?.[1] ?? '';
    const docs = parseAllDocuments(block).map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJS() as Dict;
    });
    expect(docs.map((d) => d.kind)).toEqual(['ConfigMap', 'Deployment']);
    outriggerCheck('docs-example.yaml', ((docs[0] as Dict).data as Record<string, string>)['outrigger.yaml'] as string);
    const spec = ((((docs[1] as Dict).spec as Dict).template as Dict).spec as PodSpec);
    expect(JSON.stringify(spec)).not.toContain('subPath');
    expect(sidecarOf(spec).restartPolicy).toBe('Always');
  }, 60_000);
});

describe('chart metadata', () => {
  const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as Dict;

  it('is a v2 application chart whose default image tag is its appVersion', () => {
    expect(chart.apiVersion).toBe('v2');
    expect(chart.type).toBe('application');
    const helpers = readFileSync(join(CHART, 'templates', '_helpers.tpl'), 'utf8');
    const tag = /define "outrigger\.defaultTag" -}}\s*([^\s{]+)\s*{{/.exec(helpers)?.[1];
    expect(tag).toBe(chart.appVersion);
  });

  it('lists every value in the chart README', () => {
    const readme = readFileSync(join(CHART, 'README.md'), 'utf8');
    const missing: string[] = [];
    const walk = (node: Dict, path: string): void => {
      for (const [k, v] of Object.entries((node.properties as Dict | undefined) ?? {})) {
        const p = path ? `${path}.${k}` : k;
        if (p === 'global') continue;
        const child = v as Dict;
        if (child.properties && p !== 'config') walk(child, p);
        else if (!readme.includes(`\`${p}\``)) missing.push(p);
      }
    };
    walk(schema, '');
    expect(missing).toEqual([]);
  });
});

describe('templates', () => {
  it('all parse as Go templates', () => {
    const parsed = parseChartTemplates(CHART);
    expect([...parsed.keys()]).toEqual(
      expect.arrayContaining(['_helpers.tpl', 'deployment.yaml', 'configmap.yaml', 'secret.yaml', 'service.yaml', 'NOTES.txt']),
    );
  });

  it('render the default values to valid YAML with the expected objects', () => {
    const r = renderChart(CHART);
    expect(r.docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Secret', 'Service', 'ServiceAccount']);
    for (const d of r.docs) {
      expect(typeof d.apiVersion).toBe('string');
      expect(((d.metadata as Dict).labels as Dict)['app.kubernetes.io/managed-by']).toBe('Helm');
    }
    expect(r.notes).toContain('port-forward');
  });

  it('render the config into a ConfigMap mounted as a directory, never with subPath', () => {
    const r = renderChart(CHART);
    const cm = one(r, 'ConfigMap');
    const data = cm.data as Record<string, string>;
    expect(parseYaml(data['outrigger.yaml'] as string)).toEqual(defaults.config);
    const spec = podSpec(r);
    const sidecar = sidecarOf(spec);
    expect(sidecar.volumeMounts).toEqual([{ name: 'outrigger-config', mountPath: '/etc/outrigger', readOnly: true }]);
    expect(spec.volumes).toEqual([{ name: 'outrigger-config', configMap: { name: (cm.metadata as Dict).name } }]);
    expect(sidecar.env).toContainEqual({ name: 'OUTRIGGER_CONFIG', value: '/etc/outrigger/outrigger.yaml' });
    for (const text of r.files.values()) expect(text).not.toMatch(/subPath/);
  });

  it('run the sidecar natively by default: an init container with restartPolicy Always', () => {
    const spec = podSpec(renderChart(CHART));
    expect(spec.initContainers).toHaveLength(1);
    const sidecar = (spec.initContainers as Container[])[0] as Container;
    expect(sidecar.name).toBe('outrigger');
    expect(sidecar.restartPolicy).toBe('Always');
    expect(sidecar.lifecycle).toBeUndefined();
    expect(spec.containers.map((c) => c.name)).toEqual(['app']);
    // drain.delay 5s + drain.timeout 25s + margin 5s
    expect(spec.terminationGracePeriodSeconds).toBe(35);
  });

  it('fall back to a classic container with a preStop sleep, and count it in the grace period', () => {
    const spec = podSpec(renderChart(CHART, { sidecar: { native: false } }));
    expect(spec.initContainers).toBeUndefined();
    expect(spec.containers.map((c) => c.name)).toEqual(['app', 'outrigger']);
    const sidecar = sidecarOf(spec);
    expect(sidecar.restartPolicy).toBeUndefined();
    expect(sidecar.lifecycle).toEqual({ preStop: { exec: { command: ['sleep', '5'] } } });
    expect(spec.terminationGracePeriodSeconds).toBe(40);
  });

  it('derive terminationGracePeriodSeconds from any duration form, or take it as given', () => {
    const grace = (over: Dict): number => podSpec(renderChart(CHART, over)).terminationGracePeriodSeconds;
    expect(grace({ config: { drain: { delay: '1500ms', timeout: '1m' } } })).toBe(2 + 60 + 5);
    expect(grace({ config: { drain: { delay: 2500, timeout: '0.5h' } }, terminationGraceMarginSeconds: 0 })).toBe(3 + 1800);
    expect(grace({ config: { drain: { delay: '10s', timeout: '20s' } }, terminationGracePeriodSeconds: 90 })).toBe(90);
    expect(() => renderChart(CHART, { config: { drain: { delay: 'soon' } } })).toThrow(/not a duration/);
  });

  it('probe /livez and /readyz on the admin port and lock down the container', () => {
    const sidecar = sidecarOf(podSpec(renderChart(CHART)));
    expect(sidecar.livenessProbe).toMatchObject({ httpGet: { path: '/livez', port: 15000 } });
    expect(sidecar.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 15000 } });
    expect(sidecar.startupProbe).toMatchObject({ httpGet: { path: '/readyz', port: 15000 } });
    expect(sidecar.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    expect((sidecar.resources as Dict).requests).toBeDefined();
    expect((sidecar.resources as Dict).limits).toBeDefined();
    expect(sidecar.ports?.map((p) => p.containerPort)).toEqual([15001, 15000, 15090]);
    for (const p of sidecar.ports ?? []) expect(String(p.name).length).toBeLessThanOrEqual(15);
  });

  it('take the admin token from a Secret, generated or existing', () => {
    const r = renderChart(CHART);
    const secret = one(r, 'Secret');
    const token = Buffer.from((secret.data as Record<string, string>).token as string, 'base64').toString();
    expect(token).toMatch(/^[A-Za-z0-9]{32}$/);
    expect(sidecarOf(podSpec(r)).env).toContainEqual({
      name: 'OUTRIGGER_ADMIN_TOKEN',
      valueFrom: { secretKeyRef: { name: (secret.metadata as Dict).name, key: 'token' } },
    });
    const given = renderChart(CHART, { adminToken: { value: 's3cret' } });
    expect((one(given, 'Secret').data as Dict).token).toBe(Buffer.from('s3cret').toString('base64'));
    const existing = renderChart(CHART, { adminToken: { existingSecret: 'ops-token', key: 'admin' }, existingConfigMap: 'my-config' });
    expect(byKind(existing, 'Secret')).toEqual([]);
    expect(byKind(existing, 'ConfigMap')).toEqual([]);
    const spec = podSpec(existing);
    expect(sidecarOf(spec).env).toContainEqual({ name: 'OUTRIGGER_ADMIN_TOKEN', valueFrom: { secretKeyRef: { name: 'ops-token', key: 'admin' } } });
    expect(spec.volumes).toEqual([{ name: 'outrigger-config', configMap: { name: 'my-config' } }]);
  });

  it('add Prometheus scrape annotations, and PodMonitor/ServiceMonitor only behind their flags', () => {
    const r = renderChart(CHART);
    const meta = ((one(r, 'Deployment').spec as Dict).template as Dict).metadata as Dict;
    expect(meta.annotations).toMatchObject({ 'prometheus.io/scrape': 'true', 'prometheus.io/port': '15090', 'prometheus.io/path': '/metrics' });
    expect(byKind(r, 'PodMonitor')).toEqual([]);
    expect(byKind(r, 'ServiceMonitor')).toEqual([]);
    const on = renderChart(CHART, { metrics: { podMonitor: { enabled: true }, serviceMonitor: { enabled: true, labels: { release: 'kps' } } } });
    expect((one(on, 'PodMonitor').spec as Dict).podMetricsEndpoints).toEqual([{ port: 'outrig-metrics', path: '/metrics', interval: '30s', scrapeTimeout: '10s' }]);
    const sm = one(on, 'ServiceMonitor');
    expect(((sm.metadata as Dict).labels as Dict).release).toBe('kps');
    const svcPorts = ((one(on, 'Service').spec as Dict).ports as Dict[]).map((p) => p.name);
    expect(svcPorts).toContain(((sm.spec as Dict).endpoints as Dict[])[0]?.port);
  });

  it('ship the dashboard as a ConfigMap with the grafana_dashboard label behind a flag', () => {
    expect(byKind(renderChart(CHART), 'ConfigMap')).toHaveLength(1);
    const r = renderChart(CHART, { dashboard: { enabled: true } });
    const cm = byKind(r, 'ConfigMap').find((d) => String((d.metadata as Dict).name).endsWith('-dashboard')) as Dict;
    expect(((cm.metadata as Dict).labels as Dict).grafana_dashboard).toBe('1');
    const json = (cm.data as Record<string, string>)['outrigger.json'] as string;
    expect(JSON.parse(json)).toEqual(JSON.parse(readFileSync(join(CHART, 'dashboards', 'outrigger.json'), 'utf8')));
  });

  it('fail the render when the config listen ports and sidecar.ports disagree', () => {
    expect(() => renderChart(CHART, { config: { admin: { listen: '0.0.0.0:9000' } } })).toThrow(/admin listen address "0\.0\.0\.0:9000".*sidecar\.ports\.admin \(15000\)/);
    const moved = renderChart(CHART, { config: { admin: { listen: '0.0.0.0:9000' } }, sidecar: { ports: { admin: 9000 } } });
    expect(sidecarOf(podSpec(moved)).readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 9000 } });
  });

  it('render only the ConfigMap and Secret when the demo is off (library use)', () => {
    const r = renderChart(CHART, { demo: { enabled: false } });
    expect(r.docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Secret']);
  });

  it('keep resource names within 63 characters and honour overrides', () => {
    const long = renderChart(CHART, {}, { name: 'a'.repeat(70), namespace: 'ns' });
    expect(String((one(long, 'Deployment').metadata as Dict).name).length).toBeLessThanOrEqual(63);
    const named = renderChart(CHART, { fullnameOverride: 'edge' });
    expect((one(named, 'Deployment').metadata as Dict).name).toBe('edge');
    expect(podSpec(named).volumes).toEqual([{ name: 'outrigger-config', configMap: { name: 'edge-config' } }]);
  });
});
