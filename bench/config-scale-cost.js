// Where a reload and a /metrics scrape spend their time as the config grows: 1, 100 and 1,000
// routes of route-scale's config (lib/outrigger.js routeScaleConfig), in this process, no
// HTTP. ms per call of:
//   - the YAML parse alone (js-yaml's loadAll, as src/config/load.ts calls it), and
//     JSON.parse of the same document;
//   - loadConfigText: parse, schema, defaults and presets, freeze (a .yaml path parses YAML,
//     a .json path JSON.parse);
//   - Runtime.build with the previous runtime (a reload that moves route 0 to a new host);
//   - a /metrics scrape the way GET /metrics does it (metrics.scrape(): chunks, the event
//     loop let go in between), with the series every route starts with: the first one
//     (everything rendered), then the median and max of repeated ones with no traffic in
//     between (metricsText*) and with one request on every route before each
//     (metricsAfterTraffic*: every route's requests, duration and attempts lines change).
//     For each, the longest synchronous stretch: the longest gap a setImmediate chain
//     running beside the scrape saw. Then its size, samples and chunks, and
//     registryMetricsMs, prom-client's formatting of the same registry (registry.metrics());
//     at 1,000 routes, the families that take longest (one family at a time, as the scrape
//     renders it, after one more request on every route) with their sample counts.
//   node bench/config-scale-cost.js        (after npm run build; BENCH_DIST=<dir> for another build)
// A build without Metrics.scrape (before issue 13's change) is timed through
// registry.metrics(), as its /metrics served it: one chunk, no stretch measured apart.
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
const familyPieces = await load('admin/exposition.js').then(
  (m) => m.familyPieces,
  () => null,
);

const silent = createLogger('error', { write: () => {} });

function time(fn, iterations) {
  for (let i = 0; i < Math.min(iterations, 5); i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - t0) / iterations / 1e6;
}

const round = (x) => Math.round(x * 10) / 10;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

/** One scrape: ms, bytes, chunks, and the longest stretch without a turn of the event loop. */
async function scrape(metrics) {
  let stretchMs = 0;
  let last = performance.now();
  let running = true;
  const probe = () => {
    const now = performance.now();
    stretchMs = Math.max(stretchMs, now - last);
    last = now;
    if (running) setImmediate(probe);
  };
  setImmediate(probe);
  let bytes = 0;
  let chunks = 0;
  const t0 = performance.now();
  if (metrics.scrape) {
    await metrics.scrape((chunk) => {
      bytes += chunk.length;
      chunks++;
    });
  } else {
    bytes = Buffer.byteLength(await metrics.registry.metrics());
    chunks = 1;
  }
  const ms = performance.now() - t0;
  // One more turn, so the stretch up to the scrape's end counts (all of it, for a
  // synchronous one).
  await new Promise((r) => setImmediate(r));
  running = false;
  return { ms, bytes, chunks, stretchMs };
}

/** One request on every route (200, a duration, a successful attempt), as traffic between two scrapes. */
function requestEveryRoute(runtime, k) {
  for (const r of runtime.routes) {
    r.metrics.request('GET', 200);
    r.metrics.observeDuration(0.001 * (1 + (k % 20)));
    r.metrics.attempt('success');
  }
}

const rows = [];
for (const n of [1, 100, 1000]) {
  const iterations = n >= 1000 ? 5 : 20;
  const scrapes = n >= 1000 ? 10 : 20;
  const ports = { port: 1, adminPort: 2, metricsPort: 3, upstreamUrl: 'http://127.0.0.1:4' };
  const text = routeScaleConfig({ routes: n, ...ports });
  const moved = routeScaleConfig({ routes: n, ...ports, hostOf: (i) => (i === 0 ? 'svc0-moved.test' : `svc${i}.test`) });
  const json = JSON.stringify(parseYaml(text));
  const metrics = new Metrics();
  const first = Runtime.build(loadConfigText(text, '/tmp/scale.yaml'), metrics, silent, null);
  const next = loadConfigText(moved, '/tmp/scale.yaml');
  const cold = await scrape(metrics);
  const idle = [];
  for (let i = 0; i < scrapes; i++) idle.push(await scrape(metrics));
  const busy = [];
  for (let i = 0; i < scrapes; i++) {
    requestEveryRoute(first, i);
    busy.push(await scrape(metrics));
  }
  const registryMs = [];
  for (let i = 0; i < 4; i++) {
    const t0 = process.hrtime.bigint();
    await metrics.registry.metrics();
    if (i > 0) registryMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const whole = await metrics.registry.metrics();
  rows.push({
    routes: n,
    configBytes: Buffer.byteLength(text),
    yamlParseMs: round(time(() => parseYaml(text), iterations)),
    jsonParseMs: round(time(() => JSON.parse(json), iterations)),
    loadYamlMs: round(time(() => loadConfigText(text, '/tmp/scale.yaml'), iterations)),
    loadJsonMs: round(time(() => loadConfigText(json, '/tmp/scale.json'), iterations)),
    // Each build keeps the first runtime's breakers and pools (the settings are unchanged).
    runtimeBuildMs: round(time(() => Runtime.build(next, metrics, silent, first), iterations)),
    metricsFirstMs: round(cold.ms),
    metricsFirstStretchMs: round(cold.stretchMs),
    metricsTextMs: round(median(idle.map((x) => x.ms))),
    metricsTextMaxMs: round(Math.max(...idle.map((x) => x.ms))),
    metricsTextStretchMs: round(Math.max(...idle.map((x) => x.stretchMs))),
    metricsAfterTrafficMs: round(median(busy.map((x) => x.ms))),
    metricsAfterTrafficMaxMs: round(Math.max(...busy.map((x) => x.ms))),
    metricsAfterTrafficStretchMs: round(Math.max(...busy.map((x) => x.stretchMs))),
    metricsChunks: idle[idle.length - 1].chunks,
    metricsBytes: idle[idle.length - 1].bytes,
    metricsSamples: whole.split('\n').filter((l) => l && !l.startsWith('#')).length,
    registryMetricsMs: round(median(registryMs)),
    ...(n === 1000 ? { slowestFamilies: await families(metrics.registry, first) } : {}),
  });
}

async function families(registry, runtime) {
  requestEveryRoute(runtime, 0);
  const out = [];
  for (const m of registry.getMetricsAsArray()) {
    const t0 = process.hrtime.bigint();
    let text = '';
    if (familyPieces) {
      for (const batch of await familyPieces(registry, m)) for (const piece of batch) text += piece;
    } else {
      text = await registry.getSingleMetricAsString(m.name);
    }
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    out.push({ name: m.name, ms: round(ms), samples: text.split('\n').filter((l) => l && !l.startsWith('#')).length });
  }
  return out.sort((a, b) => b.ms - a.ms).slice(0, 8);
}
console.log(JSON.stringify({ node: process.version, rows }, null, 1));
// Runtimes hold timers (breakers, stats windows); nothing else is left to do.
process.exit(0);
