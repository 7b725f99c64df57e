// Where a reload and a /metrics scrape spend their time as the config grows: 1, 100 and 1,000
// routes of route-scale's config (lib/outrigger.js routeScaleConfig), in this process, no
// HTTP. ms per call of:
//   - the YAML parse alone (js-yaml's loadAll, as src/config/load.ts calls it), and
//     JSON.parse of the same document;
//   - loadConfigText: parse, schema, defaults and presets, freeze (a .yaml path parses YAML,
//     a .json path JSON.parse);
//   - Runtime.build with the previous runtime (a reload that moves route 0 to a new host);
//   - metrics.registry.metrics(), the text /metrics serves, with the series every route
//     starts with (no traffic), its size, and at 1,000 routes the metric families that take
//     longest (getSingleMetricAsString, one family at a time) with their sample counts.
//   node bench/config-scale-cost.js        (after npm run build; BENCH_DIST=<dir> for another build)
import { resolve, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadAll } from 'js-yaml';
const parseYaml = (text) => loadAll(text, { maxAliases: 100 })[0];
import { routeScaleConfig, repoRoot } from './lib/outrigger.js';

const dist = resolve(process.env.BENCH_DIST || join(repoRoot, 'dist'));
const load = (p) => import(pathToFileURL(join(dist, p)).href);
const { loadConfigText } = await load('config/load.js');
const { Runtime } = await load('runtime.js');
const { Metrics } = await load('admin/metrics.js');
const { createLogger } = await load('log.js');

const silent = createLogger('error', { write: () => {} });

function time(fn, iterations) {
  for (let i = 0; i < Math.min(iterations, 5); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - t0) / iterations / 1e6;
}

const round = (x) => Math.round(x * 10) / 10;
const rows = [];
for (const n of [1, 100, 1000]) {
  const iterations = n >= 1000 ? 5 : 20;
  const ports = { port: 1, adminPort: 2, metricsPort: 3, upstreamUrl: 'http://127.0.0.1:4' };
  const text = routeScaleConfig({ routes: n, ...ports });
  const moved = routeScaleConfig({ routes: n, ...ports, hostOf: (i) => (i === 0 ? 'svc0-moved.test' : `svc${i}.test`) });
  const json = JSON.stringify(parseYaml(text));
  const metrics = new Metrics();
  const first = Runtime.build(loadConfigText(text, '/tmp/scale.yaml'), metrics, silent, null);
  const next = loadConfigText(moved, '/tmp/scale.yaml');
  let bytes = 0;
  const scrapeMs = [];
  for (let i = 0; i < iterations + 1; i++) {
    const t0 = process.hrtime.bigint();
    bytes = Buffer.byteLength(await metrics.registry.metrics());
    if (i > 0) scrapeMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  rows.push({
    routes: n,
    configBytes: Buffer.byteLength(text),
    yamlParseMs: round(time(() => parseYaml(text), iterations)),
    jsonParseMs: round(time(() => JSON.parse(json), iterations)),
    loadYamlMs: round(time(() => loadConfigText(text, '/tmp/scale.yaml'), iterations)),
    loadJsonMs: round(time(() => loadConfigText(json, '/tmp/scale.json'), iterations)),
    // Each build keeps the first runtime's breakers and pools (the settings are unchanged).
    runtimeBuildMs: round(time(() => Runtime.build(next, metrics, silent, first), iterations)),
    metricsTextMs: round(scrapeMs.reduce((a, b) => a + b, 0) / scrapeMs.length),
    metricsBytes: bytes,
    ...(n === 1000 ? { slowestFamilies: await families(metrics.registry) } : {}),
  });
}

async function families(registry) {
  const out = [];
  for (const m of registry.getMetricsAsArray()) {
    const t0 = process.hrtime.bigint();
    const text = await registry.getSingleMetricAsString(m.name);
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    out.push({ name: m.name, ms: round(ms), samples: text.split('\n').filter((l) => l && !l.startsWith('#')).length });
  }
  return out.sort((a, b) => b.ms - a.ms).slice(0, 8);
}
console.log(JSON.stringify({ node: process.version, rows }, null, 1));
// Runtimes hold timers (breakers, stats windows); nothing else is left to do.
process.exit(0);
