// Scenario h2c-to-h1: h2load with cleartext HTTP/2 and prior knowledge (16 connections × 10
// streams) against Outrigger, whose upstream is the bench's HTTP/1.1 upstream (nginx, or
// node:http), so every stream becomes an HTTP/1.1 request on Outrigger's upstream pool.
// Direct: h2load against the same upstream process answering h2c itself on a second port
// (nginx `listen … http2`, or node:http2). A second mode runs the same concurrency over
// HTTP/1.1 (`h2load --h1`, 160 connections, 1 request in flight each) against the same
// Outrigger and the upstream's HTTP/1.1 port, so h2c-in can be set against h1-in with one load
// generator. h2load runs in a child (lib/h2load-worker.js), so its CPU is never counted
// against the proxy. Reports req/s, p50/p99 (h2load's per-request log), the proxy's and the
// upstream's CPU per request (/proc/<pid>/stat), and the requests counted at the upstream.
// Without h2load the scenario reports "not available" instead of failing.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { startUpstream } from '../lib/upstream.js';
import { startOutrigger } from '../lib/outrigger.js';
import { runLoad } from '../lib/load.js';
import { interleave, fmt, ms, ratio, mdTable, startAll, stopAll, med } from '../lib/common.js';

export const name = 'h2c-to-h1';
export const title = 'h2c to HTTP/1.1: h2load, 16 connections × 10 streams (and 160 HTTP/1.1 connections)';
const worker = fileURLToPath(new URL('../lib/h2load-worker.js', import.meta.url));
const MODES = [
  { key: 'h2c', clients: 16, streams: 10, h1: false, label: 'h2c: 16 connections × 10 streams, prior knowledge' },
  { key: 'h1', clients: 160, streams: 1, h1: true, label: 'h1: `--h1`, 160 connections × 1 request (the same 160 in flight)' },
];
const LABELS = {
  h2c: { direct: 'direct (upstream answering h2c)', outrigger: 'Outrigger (h2c in, HTTP/1.1 upstream)' },
  h1: { direct: 'direct (upstream, HTTP/1.1)', outrigger: 'Outrigger (HTTP/1.1 in, HTTP/1.1 upstream)' },
};

/** { bin, version } of h2load, or null when it is not installed. BENCH_H2LOAD names another binary. */
export function findH2load(bin = process.env.BENCH_H2LOAD || 'h2load') {
  try {
    const v = execFileSync(bin, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 5000 }).trim();
    return { bin, version: v.replace(/^h2load\s*/, '') };
  } catch {
    return null;
  }
}

function notAvailable(ctx, reason) {
  const kinds = ['direct', 'outrigger'].filter(ctx.wants);
  const summary = Object.fromEntries(MODES.map((m) => [m.key, Object.fromEntries(kinds.map((k) => [k, { supported: false, available: false, reason }]))]));
  return {
    title,
    table: mdTable(
      ['mode', 'target', 'req/s', 'status'],
      MODES.flatMap((m) => kinds.map((k) => [m.key, LABELS[m.key][k], '—', `not available (${reason})`])),
    ),
    summary,
    raw: {},
    checks: [],
    notes: ['Install h2load (Debian `apt-get install -y nghttp2-client`), or point BENCH_H2LOAD at it, to run this scenario.'],
  };
}

function summarize(rs, isDirect) {
  const failed = rs.find((r) => !r.supported);
  if (failed) return { supported: false, available: true, reason: failed.reason };
  return {
    supported: true,
    available: true,
    rps: med(rs, (r) => r.rps),
    p50Us: med(rs, (r) => r.latency.p50Us),
    p99Us: med(rs, (r) => r.latency.p99Us),
    proxyCpuUsPerReq: isDirect ? null : med(rs, (r) => r.cpu.proxy.usPerResponse),
    upstreamCpuUsPerReq: med(rs, (r) => r.cpu.upstream.usPerResponse),
    upstreamRequestsPerReq: med(rs, (r) => (r.started ? r.upstreamRequests / r.started : null)),
    requests: rs.reduce((a, r) => a + r.responses, 0),
    errors: rs.reduce((a, r) => a + r.errors, 0),
    perRound: rs.map((r) => ({ rps: r.rps, proxyCpuUsPerReq: r.cpu.proxy?.usPerResponse ?? null, upstreamCpuUsPerReq: r.cpu.upstream.usPerResponse })),
  };
}

export async function run(ctx) {
  const h2load = findH2load();
  if (!h2load) return notAvailable(ctx, 'h2load not found');
  const upstream = await startUpstream({ h2c: true });
  const kinds = ['direct', 'outrigger'].filter(ctx.wants);
  let targets = [];
  try {
    targets = await startAll(
      kinds.map((k) => () => (k === 'direct' ? { name: 'direct', kind: k, pid: null, stop: async () => {} } : startOutrigger({ upstreamUrl: upstream.url, name: 'outrigger' }))),
    );
    // Direct goes to the upstream's h2c port in h2c mode and to its HTTP/1.1 port in h1 mode.
    const urlOf = (t, mode) => (t.kind === 'direct' ? (mode.h1 ? upstream.url : upstream.h2cUrl) : t.url);
    // Both modes and both targets interleave in one loop (h2c direct, h2c Outrigger, h1
    // direct, h1 Outrigger, then again), so the h2c-in against h1-in ratio is taken from
    // rounds run side by side.
    const runs = MODES.flatMap((mode) => targets.map((t) => ({ name: `${mode.key}/${t.name}`, mode, t })));
    const { byTarget, raw: allRaw } = await interleave(ctx, runs, async ({ mode, t }, _round, duration) => {
      const before = await upstream.requests();
      const r = await runLoad({
        worker,
        bin: h2load.bin,
        url: `${urlOf(t, mode)}/bench`,
        clients: mode.clients,
        streams: mode.streams,
        h1: mode.h1,
        duration,
        watch: t.pid === null ? { upstream: upstream.pid } : { proxy: t.pid, upstream: upstream.pid },
      });
      return { ...r, upstreamRequests: (await upstream.requests()) - before };
    });
    const summary = {};
    const raw = {};
    const rows = [];
    for (const mode of MODES) {
      raw[mode.key] = allRaw.filter((x) => x.target.startsWith(`${mode.key}/`)).map((x) => ({ ...x, target: x.target.slice(mode.key.length + 1) }));
      summary[mode.key] = Object.fromEntries(targets.map((t) => [t.name, summarize(byTarget[`${mode.key}/${t.name}`], t.pid === null)]));
    }
    const h1Outrigger = summary.h1?.outrigger?.supported ? summary.h1.outrigger : null;
    for (const mode of MODES) {
      const s = summary[mode.key];
      const d = s.direct?.supported ? s.direct : null;
      for (const t of targets) {
        const x = s[t.name];
        if (!x.supported) {
          rows.push([mode.key, LABELS[mode.key][t.kind], '—', '—', '—', '—', '—', '—', '—', '—', `failed (${x.reason})`]);
          continue;
        }
        rows.push([
          mode.key,
          LABELS[mode.key][t.kind],
          fmt(x.rps),
          d ? ratio(x.rps, d.rps) : '—',
          ms(x.p50Us, 3),
          ms(x.p99Us, 3),
          x.proxyCpuUsPerReq === null ? '—' : fmt(x.proxyCpuUsPerReq, 1),
          mode.key === 'h2c' && t.kind === 'outrigger' && h1Outrigger ? ratio(x.proxyCpuUsPerReq, h1Outrigger.proxyCpuUsPerReq) : '—',
          fmt(x.upstreamCpuUsPerReq, 1),
          fmt(x.upstreamRequestsPerReq, 2),
          x.errors ? `${x.errors} errors or not 2xx` : 'all 2xx',
        ]);
      }
    }
    const table = mdTable(
      ['mode', 'target', 'req/s', '× direct', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'CPU × h1-in', 'upstream CPU µs/req', 'upstream req/req', 'responses'],
      rows,
    );
    return {
      title,
      upstream: `${upstream.label}; HTTP/1.1 on one port (Outrigger's upstream, and direct in h1 mode), h2c with prior knowledge on a second (direct in h2c mode)`,
      table,
      summary,
      raw,
      checks: [],
      notes: [
        `h2load ${h2load.version} in a child process, \`h2load -D <duration> -t 1\`, GET /bench; modes: ${MODES.map((m) => m.label).join('; ')}. ${ctx.rounds} round(s) of ${ctx.duration}s per target and mode, all four interleaved; medians shown. Latency percentiles come from h2load's per-request log (\`--log-file\`), 2xx only.`,
        'Outrigger: one process for both modes, the bench policy config (timeout, retry, breaker, fallback configured but not triggered; metrics on, access log off). Its upstream is HTTP/1.1 (undici pool, at most 128 connections), so in h2c mode each of the 160 streams in flight is an HTTP/1.1 request on a pooled connection. Direct in h2c mode is the same upstream process answering h2c itself: what an HTTP/2 client gets without the proxy.',
        '"CPU × h1-in" (h2c row): Outrigger\'s CPU per request in h2c mode over its CPU per request in h1 mode, the same upstream leg and the same 160 requests in flight: the cost of the HTTP/2 front against the HTTP/1.1 one.',
        'CPU µs/req: the process\'s utime+stime (/proc/<pid>/stat, all threads) over the load, divided by the requests h2load completed. upstream req/req: requests counted at the upstream per request h2load started (1.00: no retry, no loss); at the end of each round h2load cuts the requests still in flight (up to 160), which count as started, not completed.',
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
