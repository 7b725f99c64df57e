// Router cost as the config grows: 1, 100 and 1,000 routes (host plus path prefix), the
// request matching the last one. Prints ns per match for the indexed router and for the
// linear first-match scan it replaced (the same matchers, scanned in order).
//   node bench/router-scale.js        (after npm run build)
import { stringify } from 'yaml';
import { loadConfigText } from '../dist/config/load.js';
import { Router, compileMatcher, parseTarget } from '../dist/proxy/router.js';

function config(n) {
  const routes = Array.from({ length: n }, (_, i) => ({ name: `r${i}`, upstream: 'u', match: { host: `svc${i}.test`, pathPrefix: `/api/p${i}` } }));
  return loadConfigText(stringify({ upstreams: { u: { endpoints: ['http://127.0.0.1:1'] } }, routes }), '/tmp/scale.yaml').config.routes;
}

function time(fn, iterations) {
  for (let i = 0; i < 10_000; i++) fn();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < iterations; i++) fn();
  return Number(process.hrtime.bigint() - t0) / iterations;
}

const rows = [];
for (const n of [1, 100, 1000]) {
  const ms = config(n).map((r) => compileMatcher(r, r.name));
  const router = new Router(ms);
  const target = parseTarget(`/api/p${n - 1}/items?x=1`, `svc${n - 1}.test`);
  const headers = {};
  const indexed = time(() => router.match('GET', target, headers), 200_000);
  const linear = time(() => {
    for (const m of ms) if (m.matches('GET', target, headers)) return m.value;
    return null;
  }, n >= 1000 ? 20_000 : 200_000);
  rows.push({ routes: n, indexedNs: Math.round(indexed), linearNs: Math.round(linear) });
}
console.log(JSON.stringify({ node: process.version, rows }, null, 1));
