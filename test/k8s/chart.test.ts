// The Helm chart (helm/outrigger), checked with the real tools: helm v4 (`helm lint --strict`,
// `helm template`, `helm install --dry-run=client`, `helm dependency build`), the Kubernetes
// and prometheus-operator schemas (unknown fields included), and `outrigger check` on every
// config the chart renders (against the filesystem the pod gives the sidecar: see checkAsInPod).
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { loadConfigFile } from '../../src/config/load.js';
import { configSchema, DEFAULT_DEAD_LETTER_DIR } from '../../src/config/schema.js';
import { chartValues, cleanupHelm, deepMerge, helm, parseManifests, renderChart, renderNotes, valuesFile, type Rendered } from './helm.js';
import { CHART, compileSchema, MAIN_JS, REPO, requireBuild } from './helpers.js';
import { checkUnknownFields, validateModels } from './kube-schemas.js';

type Dict = Record<string, unknown>;
type Container = Dict & { name: string; env?: Dict[]; ports?: Dict[]; volumeMounts?: Dict[]; securityContext?: Dict; lifecycle?: Dict };
type PodSpec = Dict & { containers: Container[]; initContainers?: Container[]; volumes: Dict[]; terminationGracePeriodSeconds: number };

const schema = JSON.parse(readFileSync(join(CHART, 'values.schema.json'), 'utf8')) as Dict;
const defaults = chartValues(CHART);
const tmp = mkdtempSync(join(tmpdir(), 'outrigger-chart-'));
afterAll(() => {
  rmSync(tmp, { recursive: true, force: true });
  cleanupHelm();
});

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
/** The Outrigger config of every ConfigMap that carries one. */
const configsOf = (r: Rendered): string[] =>
  byKind(r, 'ConfigMap')
    .map((cm) => (cm.data as Record<string, string> | undefined)?.['outrigger.yaml'])
    .filter((x): x is string => typeof x === 'string');

/** Runs `outrigger check` on a config text; returns its output or throws with it. */
function outriggerCheck(name: string, text: string): string {
  requireBuild();
  const file = join(tmp, name);
  writeFileSync(file, text);
  try {
    return execFileSync(process.execPath, [MAIN_JS, 'check', file], { cwd: REPO, encoding: 'utf8', timeout: 30_000 });
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string };
    throw new Error(`outrigger check ${name} exited ${String(e.status)}:\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** The sidecar's emptyDir mounts (the dead-letter journals): mount path → volume name. */
function journalMounts(spec: PodSpec): Map<string, string> {
  const emptyDirs = new Set(spec.volumes.filter((v) => 'emptyDir' in v).map((v) => v.name as string));
  const out = new Map<string, string>();
  for (const m of sidecarOf(spec).volumeMounts ?? []) {
    if (!emptyDirs.has(m.name as string)) continue;
    expect(m.readOnly, `${String(m.mountPath)} is writable`).toBeUndefined();
    expect(out.has(m.mountPath as string), `${String(m.mountPath)} is mounted once`).toBe(false);
    out.set(m.mountPath as string, m.name as string);
  }
  expect([...out.values()].sort(), 'every emptyDir volume is mounted in the sidecar, once').toEqual([...emptyDirs].sort());
  return out;
}

/** Every absolute deadLetter.dir of a config (defaults, presets, routes; the built-in default too) moved under `root`. */
function reRootDeadLetterDirs(cfg: Dict, root: string): void {
  // The built-in dir applies where no layer sets one: it becomes defaults' own dir, re-rooted
  // (the built-in layer comes just before defaults, so nothing else changes).
  const defaults = (cfg.defaults ??= {}) as Dict;
  const dl = (defaults.deadLetter ??= {}) as Dict;
  dl.dir ??= DEFAULT_DEAD_LETTER_DIR;
  const blocks: unknown[] = [(cfg.defaults as Dict | undefined)?.deadLetter, ...Object.values((cfg.presets as Record<string, Dict> | undefined) ?? {}).map((p) => p.deadLetter), ...((cfg.routes as Dict[] | undefined) ?? []).map((r) => r.deadLetter)];
  for (const b of blocks) {
    const dl = b as Dict | undefined;
    if (typeof dl?.dir === 'string' && isAbsolute(dl.dir)) dl.dir = join(root, dl.dir);
  }
}

/**
 * `outrigger check` on a rendered config, against the filesystem the pod gives the sidecar.
 *
 * `check`, like every load, requires the deadLetter.dir of each route that enables the
 * journal to be an existing, writable directory, and creates nothing. In the pod those
 * directories are the chart's emptyDir mounts; on the machine running the tests they do
 * not exist (/var/lib/outrigger/dead-letters), and making them there would need root and
 * leave state behind. So each emptyDir the sidecar mounts becomes a directory under a fresh
 * sandbox root, and every absolute deadLetter.dir in the config, the built-in default
 * included, is re-rooted there (the only change to the config). A directory the chart did not mount does not exist in the sandbox, so
 * check fails on it exactly as the proxy would in the pod. A config without deadLetter is
 * checked as rendered.
 *
 * Returns the proxy's own view of the result, read with its loader from the checked file:
 * route name → the pod path of its journal directory, for each route that enables it.
 */
function checkAsInPod(name: string, r: Rendered, text: string): Map<string, string> {
  const cfg = parseYaml(text) as Dict;
  if (!JSON.stringify(cfg).includes('"deadLetter"')) {
    outriggerCheck(name, text);
    return new Map();
  }
  const root = mkdtempSync(join(tmp, 'pod-'));
  const mounts = byKind(r, 'Deployment').length > 0 ? journalMounts(podSpec(r)) : new Map<string, string>();
  for (const dir of mounts.keys()) mkdirSync(join(root, dir), { recursive: true });
  reRootDeadLetterDirs(cfg, root);
  outriggerCheck(name, stringifyYaml(cfg));
  const loaded = loadConfigFile(join(tmp, name));
  return new Map(loaded.config.routes.filter((x) => x.deadLetter.enabled).map((x) => [x.name, x.deadLetter.dir.slice(root.length)]));
}

/**
 * Dead-letter journals in every form the chart resolves: the built-in dir from `defaults`,
 * a preset's dir reached through another preset, a route's own dir (also written with a
 * trailing slash by a second route), a disabled route with a dir that must not be mounted,
 * and unquoted `on:` keys (YAML 1.1) in deadLetter blocks.
 */
const DEAD_LETTER_VALUES: Dict = {
  config: {
    defaults: { deadLetter: { enabled: true, on: ['breaker-open', 'upstream-unavailable', 'timeout'] } },
    presets: {
      journaled: { deadLetter: { dir: '/var/lib/outrigger/journaled', on: ['breaker-open', 'timeout'] } },
      careful: { use: ['journaled', 'critical'], deadLetter: { maxEntries: 500 } },
    },
    routes: [
      { name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'app', deadLetter: { dir: '/data/orders', on: ['timeout'], redactHeaders: ['x-api-key'] } },
      { name: 'refunds', match: { pathPrefix: '/refunds' }, upstream: 'app', deadLetter: { dir: '/data/orders/' } },
      { name: 'payments', match: { pathPrefix: '/payments' }, upstream: 'app', use: ['careful'] },
      { name: 'search', match: { pathPrefix: '/search' }, upstream: 'app', deadLetter: { enabled: false, dir: '/data/unused' } },
      { name: 'default', match: { pathPrefix: '/' }, upstream: 'app' },
    ],
  },
};
const DEAD_LETTER_DIRS = { orders: '/data/orders', refunds: '/data/orders', payments: '/var/lib/outrigger/journaled', default: DEFAULT_DEAD_LETTER_DIR };

/**
 * A parent chart that uses Outrigger as a library: it lists the chart as a dependency
 * (file://, built with `helm dependency build`) and adds the sidecar to its own Deployment
 * with the named templates, as helm/outrigger/README.md shows.
 */
function parentChart(native: boolean): string {
  const dir = join(tmp, `parent-${native ? 'native' : 'classic'}`);
  mkdirSync(join(dir, 'templates'), { recursive: true });
  writeFileSync(
    join(dir, 'Chart.yaml'),
    `apiVersion: v2\nname: shop\nversion: 1.0.0\ndependencies:\n  - name: outrigger\n    version: 0.1.0\n    repository: file://${CHART}\n`,
  );
  writeFileSync(join(dir, 'values.yaml'), `outrigger:\n  demo:\n    enabled: false\n  sidecar:\n    native: ${String(native)}\n`);
  writeFileSync(
    join(dir, 'templates', 'deployment.yaml'),
    `{{- $o := dict "root" $ "values" .Values.outrigger }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-shop
spec:
  selector:
    matchLabels: { app: shop }
  template:
    metadata:
      labels: { app: shop }
      annotations:
        {{- include "outrigger.scrapeAnnotations" $o | nindent 8 }}
    spec:
      terminationGracePeriodSeconds: {{ include "outrigger.terminationGracePeriodSeconds" $o }}
      {{- with include "outrigger.initContainers" $o }}
      initContainers:
        {{- . | nindent 8 }}
      {{- end }}
      containers:
        - name: shop
          image: registry.example/shop:1.0.0
          env:
            - { name: HTTP_PROXY, value: "http://127.0.0.1:15001" }
        {{- with include "outrigger.containers" $o }}
        {{- . | nindent 8 }}
        {{- end }}
      volumes:
        {{- include "outrigger.configVolume" $o | nindent 8 }}
`,
  );
  helm(['dependency', 'build', dir]);
  return dir;
}

/** Every documented values combination, each rendered, linted and validated below. */
const COMBOS: Array<[string, Dict]> = [
  ['defaults (native sidecar)', {}],
  ['classic, preStop sleep', { sidecar: { native: false } }],
  ['classic, preStop exec', { sidecar: { native: false, preStop: 'exec' } }],
  ['PodMonitor', { metrics: { podMonitor: { enabled: true, labels: { release: 'kps' } } } }],
  ['ServiceMonitor', { metrics: { serviceMonitor: { enabled: true } } }],
  ['dashboard', { dashboard: { enabled: true, annotations: { grafana_folder: 'Outrigger' } } }],
  ['PrometheusRule', { prometheusRule: { enabled: true, labels: { release: 'kps' }, additionalAlertLabels: { team: 'platform' }, matchers: 'namespace="shop"' } }],
  ['PodDisruptionBudget', { podDisruptionBudget: { enabled: true } }],
  ['NetworkPolicy', { networkPolicy: { enabled: true, metricsFrom: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }] } }],
  ['existing ConfigMap', { existingConfigMap: 'my-config' }],
  ['existing Secret', { adminToken: { existingSecret: 'ops-token', key: 'admin' } }],
  ['token value', { adminToken: { value: 's3cret' } }],
  ['library use (no demo)', { demo: { enabled: false } }],
  ['dead-letter journal', DEAD_LETTER_VALUES],
  [
    'everything on',
    {
      metrics: { podMonitor: { enabled: true }, serviceMonitor: { enabled: true } },
      dashboard: { enabled: true },
      prometheusRule: { enabled: true },
      podDisruptionBudget: { enabled: true },
      networkPolicy: { enabled: true },
      adminToken: { value: 't' },
    },
  ],
];

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
      { sidecar: { preStop: 'shell' } },
      { sidecar: { preStopSleepSeconds: 0 } },
      { demo: { image: { tagg: 'x' } } },
      { metrics: { podMonitor: { enable: true } } },
      { config: { routez: [] } },
      { config: { drain: { delay: 'soon' } } },
      { sidecar: { ports: { admin: 'admin' } } },
      { terminationGracePeriodSeconds: -1 },
      { dashboard: { labels: { grafana_dashboard: 1 } } },
      { dashboard: { uid: 'x'.repeat(41) } },
      { adminToken: { create: true } },
      { prometheusRule: { errorRatioThreshold: 2 } },
      { prometheusRule: { criticalBreakerOpenFor: 'five minutes' } },
      { podDisruptionBudget: { minAvailable: 1 } },
      { networkPolicy: { ingress: [] } },
    ];
    for (const over of bad) {
      expect(validate(chartValues(CHART, over)), JSON.stringify(over)).toBe(false);
    }
  });

  it('is the schema helm enforces: helm lint --strict refuses an unknown key', () => {
    expect(() => helm(['lint', '--strict', CHART, '-f', valuesFile({ sidecar: { nativ: true } })])).toThrow(/nativ/);
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

describe('every documented values combination, with real helm', () => {
  const rendered = new Map<string, Rendered>();
  const render = (name: string, values: Dict): Rendered => {
    let r = rendered.get(name);
    if (!r) rendered.set(name, (r = renderChart(CHART, values, { name: 'demo', namespace: 'shop' })));
    return r;
  };

  it.each(COMBOS)('%s: passes helm lint --strict', (_name, values) => {
    const out = helm(['lint', '--strict', CHART, '-f', valuesFile(values)]);
    expect(out).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it.each(COMBOS)('%s: every rendered ConfigMap config passes `outrigger check`', (name, values) => {
    const r = render(name, values);
    const configs = configsOf(r);
    expect(configs.length).toBe(values.existingConfigMap ? 0 : 1);
    configs.forEach((text, i) => checkAsInPod(`${name.replace(/\W+/g, '-')}-${i}.yaml`, r, text));
  }, 60_000);

  it('every rendered object validates against the Kubernetes and prometheus-operator schemas, unknown fields included', async () => {
    const all = COMBOS.flatMap(([name, values]) => render(name, values).docs);
    const lib = parseManifests(helm(['template', 'rel', parentChart(true), '--namespace', 'shop'])).docs;
    const libClassic = parseManifests(helm(['template', 'rel', parentChart(false), '--namespace', 'shop'])).docs;
    const docs = [...all, ...lib, ...libClassic];
    expect(new Set(docs.map((d) => d.kind))).toEqual(
      new Set(['ConfigMap', 'Deployment', 'Secret', 'Service', 'ServiceAccount', 'PodMonitor', 'ServiceMonitor', 'PrometheusRule', 'PodDisruptionBudget', 'NetworkPolicy']),
    );
    expect(await validateModels(docs)).toEqual([]);
    expect(checkUnknownFields(docs)).toEqual([]);
  }, 120_000);

  it('the schema checks can fail: a wrong type and an unknown field are both reported', async () => {
    const d = structuredClone(one(render('defaults (native sidecar)', {}), 'Deployment'));
    const spec = ((d.spec as Dict).template as { spec: PodSpec }).spec;
    (spec as Dict).terminationGracePeriodSeconds = 'soon';
    (sidecarOf(spec) as Dict).restartPolicyy = 'Always';
    expect((await validateModels([d])).join('\n')).toMatch(/terminationGracePeriodSeconds/);
    expect(checkUnknownFields([d]).join('\n')).toMatch(/restartPolicyy/);
  }, 60_000);

  it('renders the same manifest every time: no random or looked-up token', () => {
    for (const values of [{}, { adminToken: { value: 's3cret' } }]) {
      const a = helm(['template', 'demo', CHART, '-f', valuesFile(values)]);
      const b = helm(['template', 'demo', CHART, '-f', valuesFile(values)]);
      expect(a).toBe(b);
    }
    for (const text of readChartTemplates()) expect(text).not.toMatch(/\{\{[^}]*\b(lookup|rand\w*|uuidv4|now)\b/);
  });
});

function readChartTemplates(): string[] {
  const dir = join(CHART, 'templates');
  return ['_helpers.tpl', 'configmap.yaml', 'secret.yaml', 'deployment.yaml', 'dashboard-configmap.yaml', 'prometheusrule.yaml'].map((f) => readFileSync(join(dir, f), 'utf8'));
}

describe('YAML 1.1 and `on:`', () => {
  it('gives a config that passes check from user values with unquoted retry.on and fallback.on (defaults, presets, routes)', () => {
    const userValues = `config:
  defaults:
    retry:
      on: [connect-failure, reset, gateway-error]
    fallback:
      on: [breaker-open]
      status: 503
      body: degraded
  presets:
    careful:
      use: [critical]
      retry:
        on: [connect-failure]
      fallback:
        on: [breaker-open, overloaded]
        status: 503
  routes:
    - name: orders
      match: { pathPrefix: /orders }
      upstream: app
      use: [careful]
      retry:
        attempts: 3
        on: [connect-failure, 5xx]
      fallback:
        on: [timeout, upstream-unavailable]
        status: 504
        body: '{"late":true}'
    - name: default
      match: { pathPrefix: / }
      upstream: app
`;
    // Helm reads these values as YAML 1.1: every `on` key above arrives as `true`.
    const asHelmReadsThem = parseYaml(userValues, { version: '1.1' }) as { config: { routes: Array<{ retry: Dict }> } };
    expect(Object.keys(asHelmReadsThem.config.routes[0]?.retry ?? {})).toContain('true');
    const r = renderChart(CHART, userValues);
    const [text] = configsOf(r);
    outriggerCheck('yaml11.yaml', text as string);
    const cfg = parseYaml(text as string) as { defaults: Dict; presets: Record<string, Dict>; routes: Array<{ retry: Dict; fallback: Dict }> };
    expect((cfg.defaults.retry as Dict).on).toEqual(['connect-failure', 'reset', 'gateway-error']);
    expect((cfg.defaults.fallback as Dict).on).toEqual(['breaker-open']);
    expect((cfg.presets.careful?.retry as Dict).on).toEqual(['connect-failure']);
    expect((cfg.presets.careful?.fallback as Dict).on).toEqual(['breaker-open', 'overloaded']);
    expect(cfg.routes[0]?.retry.on).toEqual(['connect-failure', '5xx']);
    expect(cfg.routes[0]?.fallback.on).toEqual(['timeout', 'upstream-unavailable']);
    expect(text).not.toMatch(/"?true"?:/);
  }, 60_000);

  it('maps unquoted deadLetter.on back too (defaults, presets, routes)', () => {
    const userValues = `config:
  defaults:
    deadLetter:
      enabled: true
      dir: /var/lib/outrigger/dead-letters
      on: [breaker-open, timeout]
  presets:
    journaled:
      deadLetter:
        on: [overloaded]
  routes:
    - name: orders
      match: { pathPrefix: / }
      upstream: app
      use: [journaled]
      deadLetter:
        on: [upstream-unavailable]
`;
    const r = renderChart(CHART, userValues);
    const [text] = configsOf(r);
    expect(text).not.toMatch(/"?true"?:/);
    const cfg = parseYaml(text as string) as { defaults: Dict; presets: Record<string, Dict>; routes: Dict[] };
    expect((cfg.defaults.deadLetter as Dict).on).toEqual(['breaker-open', 'timeout']);
    expect((cfg.presets.journaled?.deadLetter as Dict).on).toEqual(['overloaded']);
    expect((cfg.routes[0]?.deadLetter as Dict).on).toEqual(['upstream-unavailable']);
    expect(checkAsInPod('yaml11-dead-letter.yaml', r, text as string)).toEqual(new Map([['orders', DEFAULT_DEAD_LETTER_DIR]]));
    expect(() => renderChart(CHART, `config:\n  defaults:\n    deadLetter:\n      on: [timeout]\n      "on": [overloaded]\n`)).toThrow(/retry, fallback or deadLetter block sets both `on` and/);
  }, 60_000);

  it('refuses values that set both the unquoted and the quoted key', () => {
    const both = `config:\n  routes:\n    - name: r\n      match: { pathPrefix: / }\n      upstream: app\n      retry:\n        on: [reset]\n        "on": [5xx]\n`;
    expect(() => renderChart(CHART, both)).toThrow(/sets both `on` and/);
  });

  it('renders the default values into a config equal to values.yaml read as YAML 1.2', () => {
    const [text] = configsOf(renderChart(CHART));
    const asWritten = (parseYaml(readFileSync(join(CHART, 'values.yaml'), 'utf8')) as Dict).config;
    expect(parseYaml(text as string)).toEqual(asWritten);
  });
});

describe('the default Outrigger config in values.yaml', () => {
  it('points the demo upstream at the demo app port and keeps listen ports equal to sidecar.ports', () => {
    const cfg = defaults.config as Dict;
    const demo = defaults.demo as Dict;
    const ports = (defaults.sidecar as Dict).ports as Dict;
    expect((((cfg.upstreams as Dict).app as Dict).endpoints as string[])[0]).toBe(`http://127.0.0.1:${String(demo.port)}`);
    expect(cfg.listen).toBe(`0.0.0.0:${String(ports.proxy)}`);
    // The admin surface stays on the pod's loopback; probes use the read-only status listener.
    expect((cfg.admin as Dict).listen).toBe(`127.0.0.1:${String(ports.admin)}`);
    expect((cfg.status as Dict).listen).toBe(`0.0.0.0:${String(ports.status)}`);
    expect((cfg.metrics as Dict).listen).toBe(`0.0.0.0:${String(ports.metrics)}`);
  });
});

describe('docs/kubernetes.md', () => {
  it('has a minimal example whose manifests validate and whose config passes `outrigger check`', async () => {
    const md = readFileSync(join(REPO, 'docs', 'kubernetes.md'), 'utf8');
    const block = /```yaml\n([\s\S]*?)```/.exec(md)?.[1] ?? '';
    const docs = parseAllDocuments(block).map((d) => {
      expect(d.errors).toEqual([]);
      return d.toJS() as Dict;
    });
    expect(docs.map((d) => d.kind)).toEqual(['ConfigMap', 'Deployment']);
    outriggerCheck('docs-example.yaml', ((docs[0] as Dict).data as Record<string, string>)['outrigger.yaml'] as string);
    const spec = (((docs[1] as Dict).spec as Dict).template as Dict).spec as PodSpec;
    expect(JSON.stringify(spec)).not.toContain('subPath');
    expect(sidecarOf(spec).restartPolicy).toBe('Always');
    expect(await validateModels(docs)).toEqual([]);
    expect(checkUnknownFields(docs)).toEqual([]);
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
  it('render the default values to the expected objects, and NOTES that say how to reach the admin port', () => {
    const r = renderChart(CHART);
    expect(r.docs.map((d) => d.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Service', 'ServiceAccount']);
    for (const d of r.docs) expect(((d.metadata as Dict).labels as Dict)['app.kubernetes.io/managed-by']).toBe('Helm');
    const notes = renderNotes(CHART);
    expect(notes).toContain('port-forward');
    expect(notes).toContain('15000');
  });

  it('render the config into a ConfigMap mounted as a directory, never with subPath', () => {
    const r = renderChart(CHART);
    const cm = one(r, 'ConfigMap');
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

  it('fall back to a classic container whose preStop needs no shell, counted in the grace period', () => {
    const spec = podSpec(renderChart(CHART, { sidecar: { native: false } }));
    expect(spec.initContainers).toBeUndefined();
    expect(spec.containers.map((c) => c.name)).toEqual(['app', 'outrigger']);
    const sidecar = sidecarOf(spec);
    expect(sidecar.restartPolicy).toBeUndefined();
    expect(sidecar.lifecycle).toEqual({ preStop: { sleep: { seconds: 5 } } });
    expect(spec.terminationGracePeriodSeconds).toBe(40);
    const exec = sidecarOf(podSpec(renderChart(CHART, { sidecar: { native: false, preStop: 'exec', preStopSleepSeconds: 7 } })));
    expect(exec.lifecycle).toEqual({ preStop: { exec: { command: ['node', '-e', 'setTimeout(() => {}, 7000)'] } } });
  });

  it('derive terminationGracePeriodSeconds from any duration form, or take it as given', () => {
    const grace = (over: Dict): number => podSpec(renderChart(CHART, over)).terminationGracePeriodSeconds;
    expect(grace({ config: { drain: { delay: '1500ms', timeout: '1m' } } })).toBe(2 + 60 + 5);
    expect(grace({ config: { drain: { delay: 2500, timeout: '0.5h' } }, terminationGraceMarginSeconds: 0 })).toBe(3 + 1800);
    expect(grace({ config: { drain: { delay: '10s', timeout: '20s' } }, terminationGracePeriodSeconds: 90 })).toBe(90);
    // values.schema.json refuses it first; past the schema, the template still does.
    expect(() => renderChart(CHART, { config: { drain: { delay: 'soon' } } })).toThrow(/drain\/delay/);
    expect(() => renderChart(CHART, { config: { drain: { delay: 'soon' } } }, undefined, ['--skip-schema-validation'])).toThrow(/not a duration/);
  });

  it('probe the read-only status port, never the admin port, and lock down the container', () => {
    const sidecar = sidecarOf(podSpec(renderChart(CHART)));
    expect(sidecar.livenessProbe).toMatchObject({ httpGet: { path: '/livez', port: 15021 } });
    expect(sidecar.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 15021 } });
    expect(sidecar.startupProbe).toMatchObject({ httpGet: { path: '/readyz', port: 15021 } });
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
    // The admin port (15000) listens on the pod's loopback and is not declared.
    expect(sidecar.ports?.map((p) => p.containerPort)).toEqual([15001, 15021, 15090]);
    for (const p of sidecar.ports ?? []) expect(String(p.name).length).toBeLessThanOrEqual(15);
  });

  it('refuse probes without a status listener, and ports that disagree with the config', () => {
    expect(() => renderChart(CHART, { config: { status: null } })).toThrow(/probes need config\.status\.listen/);
    const noProbes = { startup: { enabled: false }, liveness: { enabled: false }, readiness: { enabled: false } };
    expect(sidecarOf(podSpec(renderChart(CHART, { config: { status: null }, sidecar: { probes: noProbes } }))).livenessProbe).toBeUndefined();
    expect(() => renderChart(CHART, { config: { status: { listen: '0.0.0.0:9000' } } })).toThrow(/status listen address "0\.0\.0\.0:9000".*sidecar\.ports\.status \(15021\)/);
    const moved = renderChart(CHART, { config: { status: { listen: '0.0.0.0:9000' } }, sidecar: { ports: { status: 9000 } } });
    expect(sidecarOf(podSpec(moved)).readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 9000 } });
    expect(() => renderChart(CHART, { config: { admin: { listen: '127.0.0.1:9001' } } })).toThrow(/admin listen address/);
  });

  it('take the admin token from a Secret that is stable across renders: existing, or from a value', () => {
    expect(byKind(renderChart(CHART), 'Secret')).toEqual([]);
    expect(sidecarOf(podSpec(renderChart(CHART))).env?.map((e) => e.name)).not.toContain('OUTRIGGER_ADMIN_TOKEN');
    const given = renderChart(CHART, { adminToken: { value: 's3cret' } });
    const secret = one(given, 'Secret');
    expect((secret.data as Dict).token).toBe(Buffer.from('s3cret').toString('base64'));
    expect(sidecarOf(podSpec(given)).env).toContainEqual({
      name: 'OUTRIGGER_ADMIN_TOKEN',
      valueFrom: { secretKeyRef: { name: (secret.metadata as Dict).name, key: 'token' } },
    });
    const existing = renderChart(CHART, { adminToken: { existingSecret: 'ops-token', key: 'admin', value: 'ignored' }, existingConfigMap: 'my-config' });
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
    expect(() => renderChart(CHART, { metrics: { serviceMonitor: { enabled: true } }, service: { exposeMetrics: false } })).toThrow(/exposeMetrics/);
  });

  it('ship the dashboard behind a flag, with a uid per release or the one given', () => {
    expect(byKind(renderChart(CHART), 'ConfigMap')).toHaveLength(1);
    const dash = (r: Rendered): { cm: Dict; key: string; json: Dict } => {
      const cm = byKind(r, 'ConfigMap').find((d) => String((d.metadata as Dict).name).endsWith('-dashboard')) as Dict;
      const [key, text] = Object.entries(cm.data as Record<string, string>)[0] as [string, string];
      return { cm, key, json: JSON.parse(text) as Dict };
    };
    const a = dash(renderChart(CHART, { dashboard: { enabled: true } }, { name: 'a', namespace: 'shop' }));
    const b = dash(renderChart(CHART, { dashboard: { enabled: true } }, { name: 'b', namespace: 'shop' }));
    const a2 = dash(renderChart(CHART, { dashboard: { enabled: true } }, { name: 'a', namespace: 'other' }));
    expect(((a.cm.metadata as Dict).labels as Dict).grafana_dashboard).toBe('1');
    const uids = [a.json.uid, b.json.uid, a2.json.uid] as string[];
    expect(new Set(uids).size).toBe(3);
    for (const uid of uids) expect(uid.length).toBeLessThanOrEqual(40);
    // The Grafana sidecar writes every dashboard into one folder: the file name is unique too.
    expect(a.key).toBe(`${String(a.json.uid)}.json`);
    const { uid: _u, ...rest } = a.json;
    const { uid: _s, ...source } = JSON.parse(readFileSync(join(CHART, 'dashboards', 'outrigger.json'), 'utf8')) as Dict;
    expect(rest).toEqual(source);
    const named = dash(renderChart(CHART, { dashboard: { enabled: true, uid: 'edge-proxy' } }));
    expect(named.json.uid).toBe('edge-proxy');
    expect(named.key).toBe('edge-proxy.json');
  });

  it('render the PrometheusRule, PodDisruptionBudget and NetworkPolicy only behind their flags', () => {
    const off = renderChart(CHART);
    for (const kind of ['PrometheusRule', 'PodDisruptionBudget', 'NetworkPolicy']) expect(byKind(off, kind)).toEqual([]);
    const on = renderChart(CHART, {
      prometheusRule: { enabled: true, matchers: 'namespace="shop"', additionalAlertLabels: { team: 'platform' } },
      podDisruptionBudget: { enabled: true, maxUnavailable: '50%' },
      networkPolicy: { enabled: true, proxyFrom: [{ podSelector: { matchLabels: { role: 'client' } } }] },
    });
    const rules = ((one(on, 'PrometheusRule').spec as Dict).groups as Array<{ rules: Array<{ alert: string; expr: string; labels: Dict }> }>)[0]?.rules ?? [];
    expect(rules.map((x) => x.alert)).toHaveLength(7);
    for (const rule of rules) {
      expect(rule.labels.team).toBe('platform');
      // Every selector of the rule carries the matchers, `up` aside (it has no Outrigger labels).
      for (const sel of rule.expr.matchAll(/\b(outrigger_[a-z_]+)\{([^}]*)\}/g)) expect(sel[2], `${rule.alert}: ${sel[0]}`).toContain('namespace="shop"');
    }
    expect((one(on, 'PodDisruptionBudget').spec as Dict).maxUnavailable).toBe('50%');
    const np = one(on, 'NetworkPolicy').spec as { ingress: Array<{ ports: Dict[]; from?: Dict[] }> };
    expect(np.ingress.map((i) => i.ports[0]?.port)).toEqual([15001, 15021, 15090]);
    expect(np.ingress[0]?.from).toEqual([{ podSelector: { matchLabels: { role: 'client' } } }]);
    expect(np.ingress[2]?.from).toBeUndefined();
    // Nothing may reach the admin port from outside the pod.
    expect(JSON.stringify(np)).not.toContain('15000');
  });

  it('render only the ConfigMap when the demo is off (library use)', () => {
    const r = renderChart(CHART, { demo: { enabled: false }, podDisruptionBudget: { enabled: true }, networkPolicy: { enabled: true } });
    expect(r.docs.map((d) => d.kind).sort()).toEqual(['ConfigMap']);
  });

  it('work as a library from a parent chart, native and classic, with the names the subchart renders', () => {
    for (const native of [true, false]) {
      const r = parseManifests(helm(['template', 'rel', parentChart(native), '--namespace', 'shop']));
      const cm = one(r, 'ConfigMap');
      outriggerCheck(`parent-${String(native)}.yaml`, (cm.data as Record<string, string>)['outrigger.yaml'] as string);
      const spec = podSpec(r);
      expect(spec.volumes).toEqual([{ name: 'outrigger-config', configMap: { name: (cm.metadata as Dict).name } }]);
      const sidecar = sidecarOf(spec);
      expect(native ? spec.initContainers?.map((c) => c.name) : spec.containers.map((c) => c.name)).toEqual(native ? ['outrigger'] : ['shop', 'outrigger']);
      expect(sidecar.restartPolicy).toBe(native ? 'Always' : undefined);
      expect(spec.terminationGracePeriodSeconds).toBe(native ? 35 : 40);
    }
  }, 60_000);

  it('keep resource names within 63 characters and honour overrides', () => {
    const long = renderChart(CHART, {}, { name: 'a'.repeat(53), namespace: 'ns' });
    expect(String((one(long, 'Deployment').metadata as Dict).name).length).toBeLessThanOrEqual(63);
    const named = renderChart(CHART, { fullnameOverride: 'edge' });
    expect((one(named, 'Deployment').metadata as Dict).name).toBe('edge');
    expect(podSpec(named).volumes).toEqual([{ name: 'outrigger-config', configMap: { name: 'edge-config' } }]);
  });
});

describe('the dead-letter journal: an emptyDir for every directory an enabled route writes to', () => {
  const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
  const route = (name: string, extra: Dict = {}): Dict => ({ name, match: { pathPrefix: `/${name}` }, upstream: 'app', ...extra });
  const mountsOf = (values: Dict | string): Map<string, string> => journalMounts(podSpec(renderChart(CHART, values)));

  it('mounts nothing when no route enables it, even with dirs set', () => {
    for (const values of [
      {},
      { config: { defaults: { deadLetter: { dir: '/data/dl' } }, routes: [route('a', { deadLetter: { dir: '/data/a' } })] } },
      { config: { defaults: { deadLetter: { enabled: true } }, routes: [route('a', { deadLetter: { enabled: false } })] } },
      // A relative dir is refused only where it would be used.
      { config: { routes: [route('a', { deadLetter: { enabled: false, dir: 'journal' } })] } },
    ]) {
      const spec = podSpec(renderChart(CHART, values));
      expect(spec.volumes, JSON.stringify(values)).toEqual([{ name: 'outrigger-config', configMap: { name: 'demo-outrigger-config' } }]);
      expect(sidecarOf(spec).volumeMounts).toEqual([{ name: 'outrigger-config', mountPath: '/etc/outrigger', readOnly: true }]);
    }
  });

  it('mounts exactly the directories the proxy resolves for the enabled routes: defaults, presets through presets, routes', () => {
    for (const native of [true, false]) {
      const r = renderChart(CHART, deepMerge(DEAD_LETTER_VALUES, { sidecar: { native } }) as Dict);
      const mounts = journalMounts(podSpec(r));
      expect([...mounts.keys()].sort()).toEqual(['/data/orders', '/var/lib/outrigger/dead-letters', '/var/lib/outrigger/journaled']);
      // The proxy's own merge (its loader, on the config checked in the pod's layout) agrees.
      const used = checkAsInPod(`dead-letter-${String(native)}.yaml`, r, configsOf(r)[0] as string);
      expect(Object.fromEntries(used)).toEqual(DEAD_LETTER_DIRS);
      expect(new Set(used.values())).toEqual(new Set(mounts.keys()));
    }
  }, 60_000);

  it('mounts a route\'s own dir instead of the defaults dir when no enabled route uses the latter', () => {
    const values = { config: { defaults: { deadLetter: { enabled: true, dir: '/data/shared' } }, routes: [route('a', { deadLetter: { dir: '/data/a' } }), route('b', { deadLetter: { enabled: false } })] } };
    const r = renderChart(CHART, values);
    expect([...journalMounts(podSpec(r)).keys()]).toEqual(['/data/a']);
    expect(checkAsInPod('own-dir.yaml', r, configsOf(r)[0] as string)).toEqual(new Map([['a', '/data/a']]));
  }, 60_000);

  it('follows the proxy\'s preset order: a later preset wins, a preset\'s own use list comes first, the route\'s keys last', () => {
    const values = {
      config: {
        presets: {
          p1: { deadLetter: { enabled: true, dir: '/data/p1' } },
          p2: { deadLetter: { dir: '/data/p2' } },
          base: { deadLetter: { dir: '/data/base' } },
          onTop: { use: ['base'], deadLetter: { enabled: true } },
          override: { use: ['p2'], deadLetter: { dir: '/data/override' } },
          // (not `off`: Helm reads values as YAML 1.1, where an unquoted off is false)
          quiet: { deadLetter: { enabled: false } },
        },
        routes: [
          route('later', { use: ['p1', 'p2'] }),
          route('nested', { use: ['onTop'] }),
          route('own', { use: ['p1'], deadLetter: { dir: '/data/own' } }),
          // p2 is reached through override (first), so listing it after changes nothing.
          route('reached', { use: ['p1', 'override', 'p2'] }),
          route('disabled', { use: ['p1', 'quiet'] }),
          route('builtin', { use: ['transient', 'p1'] }),
        ],
      },
    };
    const r = renderChart(CHART, values);
    const used = checkAsInPod('presets.yaml', r, configsOf(r)[0] as string);
    expect(Object.fromEntries(used)).toEqual({ later: '/data/p2', nested: '/data/base', own: '/data/own', reached: '/data/override', builtin: '/data/p1' });
    expect([...journalMounts(podSpec(r)).keys()].sort()).toEqual(['/data/base', '/data/override', '/data/own', '/data/p1', '/data/p2']);
  }, 60_000);

  it('renders (and leaves the refusal to outrigger check) when presets use each other in a cycle', () => {
    const values = { config: { presets: { a: { use: ['b'], deadLetter: { dir: '/data/a' } }, b: { use: ['a'], deadLetter: { enabled: true } } }, routes: [route('r', { use: ['a'] })] } };
    const r = renderChart(CHART, values);
    expect([...journalMounts(podSpec(r)).keys()]).toEqual(['/data/a']);
    expect(() => outriggerCheck('cycle.yaml', configsOf(r)[0] as string)).toThrow(/preset cycle/);
  });

  it('names each volume with a stable DNS label of its own, whatever the other routes', () => {
    const long = `/data/${'x'.repeat(240)}`;
    const a = mountsOf({ config: { routes: [route('a', { deadLetter: { enabled: true, dir: '/data/a' } })] } });
    const b = mountsOf({ config: { routes: [route('z', { deadLetter: { enabled: true, dir: long } }), route('b', { deadLetter: { enabled: true } }), route('a', { deadLetter: { enabled: true, dir: '/data/a/' } })] } });
    expect(b.get('/data/a')).toBe(a.get('/data/a'));
    expect(b.size).toBe(3);
    const names = [...b.values()];
    expect(new Set(names).size).toBe(3);
    for (const n of names) {
      expect(n).toMatch(DNS_LABEL);
      expect(n.length).toBeLessThanOrEqual(63);
      expect(n).not.toBe('outrigger-config');
    }
    // Known values, so a change to the naming (which renames volumes on upgrade) is deliberate.
    expect(b.get(DEFAULT_DEAD_LETTER_DIR)).toBe('outrigger-dl-1fad980af7');
  });

  it('refuses a relative dir, and one at /, at or under /etc/outrigger, of an enabled route, naming the route and the key', () => {
    const cases: Array<[Dict, RegExp]> = [
      [{ routes: [route('a', { deadLetter: { enabled: true, dir: 'journal' } })] }, /config\.routes\[0\] \(a\) enables deadLetter with the relative dir "journal" \(from config\.routes\[0\]\.deadLetter\.dir\).*\/etc\/outrigger/],
      [{ defaults: { deadLetter: { enabled: true, dir: './dl' } } }, /config\.routes\[0\] \(default\) .*relative dir "\.\/dl" \(from config\.defaults\.deadLetter\.dir\)/],
      [{ presets: { p: { deadLetter: { dir: 'dl' } } }, routes: [route('a', { use: ['p'], deadLetter: { enabled: true } })] }, /relative dir "dl" \(from config\.presets\.p\.deadLetter\.dir\)/],
      [{ defaults: { deadLetter: { enabled: true, dir: '/etc/outrigger/dl' } } }, /"\/etc\/outrigger\/dl".*cannot be \/ or at or under \/etc\/outrigger/],
      [{ routes: [route('a', { deadLetter: { enabled: true, dir: '/etc/outrigger/' } })] }, /"\/etc\/outrigger"/],
      [{ routes: [route('a', { deadLetter: { enabled: true, dir: '/' } })] }, /journal to "\/"/],
    ];
    for (const [config, message] of cases) expect(() => renderChart(CHART, { config }), JSON.stringify(config)).toThrow(message);
    // /etc/outrigger-journal is a directory of its own.
    expect([...mountsOf({ config: { defaults: { deadLetter: { enabled: true, dir: '/etc/outrigger-journal' } } } }).keys()]).toEqual(['/etc/outrigger-journal']);
  });

  it('mounts from config values with an existing ConfigMap too, and from a parent chart using the library templates', () => {
    const existing = renderChart(CHART, { existingConfigMap: 'my-config', config: { defaults: { deadLetter: { enabled: true } } } });
    expect(byKind(existing, 'ConfigMap')).toEqual([]);
    expect([...journalMounts(podSpec(existing)).keys()]).toEqual([DEFAULT_DEAD_LETTER_DIR]);
    for (const native of [true, false]) {
      const r = parseManifests(helm(['template', 'rel', parentChart(native), '--namespace', 'shop', '-f', valuesFile({ outrigger: DEAD_LETTER_VALUES })]));
      const mounts = journalMounts(podSpec(r));
      expect([...mounts.keys()].sort()).toEqual(['/data/orders', '/var/lib/outrigger/dead-letters', '/var/lib/outrigger/journaled']);
      expect(new Set(checkAsInPod(`parent-dl-${String(native)}.yaml`, r, configsOf(r)[0] as string).values())).toEqual(new Set(mounts.keys()));
    }
  }, 60_000);

  it('is what `outrigger check` needs: the rendered config fails outside the pod, where the journal dir does not exist', () => {
    const r = renderChart(CHART, { config: { defaults: { deadLetter: { enabled: true } } } });
    const [text] = configsOf(r);
    if (!existsSync(DEFAULT_DEAD_LETTER_DIR)) {
      expect(() => outriggerCheck('outside-pod.yaml', text as string)).toThrow(/deadLetter\.dir: "\/var\/lib\/outrigger\/dead-letters".* is not a writable directory/);
    }
    // And a sandbox without the chart's mount fails the same way: the check sees a missing mount.
    const cfg = parseYaml(text as string) as Dict;
    reRootDeadLetterDirs(cfg, mkdtempSync(join(tmp, 'no-mounts-')));
    expect(() => outriggerCheck('no-mounts.yaml', stringifyYaml(cfg))).toThrow(/is not a writable directory/);
    expect(checkAsInPod('with-mounts.yaml', r, text as string)).toEqual(new Map([['default', DEFAULT_DEAD_LETTER_DIR]]));
  }, 60_000);
});
