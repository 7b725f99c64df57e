// Route scale (issue 13, "flat cost as the config grows"): three Outrigger processes side by
// side with 1, 100 and 1,000 routes (route i: host svc<i>.test, path prefix /api/p<i>, the
// bench's policies on each), the throughput scenario's closed loop (64 connections) sent to
// the LAST route, interleaved rounds. Reports req/s, p50/p99 and proxy CPU per request, each
// against the 1-route process.
//
// Then, on the 1,000-route process:
//  - reloads under a constant load (1,000 req/s): the config file is rewritten (route 0 gets
//    a new host) and POST /reload is timed; failed or non-200 responses of the load are
//    counted, and the new host must answer 200 and the old one 404 after each reload;
//  - /metrics scrapes after traffic has touched every route: time and size of each, and the
//    longest event-loop stall they cause, seen from outside by a child process that sends
//    GET /livez to the admin port back to back (lib/gap-probe-worker.js), plus the proxy's
//    own nodejs_eventloop_lag_max_seconds.
//
// Before the load, every route of every process is requested once (host and prefix): each
// must answer 200 and reach the upstream, and a request whose host and prefix belong to two
// different routes must be refused with 404 OUTRIGGER_NO_ROUTE. After the rounds, the proxy's
// own outrigger_requests_total must show the load on the last route only.
import { renameSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { startUpstream } from '../lib/upstream.js';
import { startOutrigger, routeScaleConfig, scaleRoute } from '../lib/outrigger.js';
import { runLoad } from '../lib/load.js';
import { httpRequest, sleep } from '../lib/proc.js';
import { interleave, median, fmt, ms, ratio, mdTable, check, statusSummary } from '../lib/common.js';
import { summarize } from './throughput.js';

export const name = 'route-scale';
export const title = 'Route scale: 1, 100 and 1,000 routes (closed loop, 64 connections, the last route); reload and /metrics at 1,000 routes';

const SIZES = [1, 100, 1000];
const CONNECTIONS = 64;
const RELOAD_RATE = 1000; // req/s of the constant load during the reloads
const RELOAD_STAGGER = 20; // as in the latency scenario: 20 one-connection instances, staggered
const probeWorker = fileURLToPath(new URL('../lib/gap-probe-worker.js', import.meta.url));
const now = () => performance.timeOrigin + performance.now();

/** One GET with a Host header on a keep-alive agent: { status, body }. */
function get(agent, url, host, timeoutMs = 5000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, headers: { host }, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: GET ${url} (Host ${host})`)));
    req.on('error', reject);
  });
}

/** Sum of the samples of `metric` whose label text satisfies pred (Prometheus text format). */
function metricSum(text, metric, pred = () => true) {
  let sum = 0;
  const open = `${metric}{`;
  for (const line of text.split('\n')) {
    if (line.startsWith(open)) {
      const close = line.lastIndexOf('}');
      if (pred(line.slice(open.length, close))) sum += Number(line.slice(close + 1).trim().split(' ')[0]);
    } else if (line.startsWith(`${metric} `)) {
      sum += Number(line.slice(metric.length + 1).trim().split(' ')[0]);
    }
  }
  return sum;
}

const seriesCount = (text) => text.split('\n').filter((l) => l && !l.startsWith('#')).length;

async function scrape(t) {
  const t0 = now();
  const r = await httpRequest(t.metricsUrl, { timeoutMs: 30000 });
  const t1 = now();
  if (r.status !== 200) throw new Error(`${t.name}: GET /metrics answered ${r.status}`);
  return { startMs: t0, endMs: t1, ms: t1 - t0, bytes: Buffer.byteLength(r.body), text: r.body };
}

/**
 * Every route answers 200 through its own host and prefix, and reaches the upstream; a host
 * and prefix of two different routes get 404 OUTRIGGER_NO_ROUTE. Throws otherwise.
 */
async function checkReachable(t, upstream) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  try {
    const before = await upstream.requests();
    const bad = [];
    let next = 0;
    const worker = async () => {
      while (next < t.routes) {
        const r = scaleRoute(next++);
        const res = await get(agent, `${t.url}${r.prefix}/reach`, r.host);
        if (res.status !== 200) bad.push(`${r.name}: ${res.status} ${res.body.slice(0, 80)}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    const reached = (await upstream.requests()) - before;
    if (bad.length) throw new Error(`${t.name}: ${bad.length} of ${t.routes} routes did not answer 200 (${bad.slice(0, 3).join('; ')})`);
    if (reached !== t.routes) throw new Error(`${t.name}: ${t.routes} routes answered but the upstream saw ${reached} requests`);
    const last = scaleRoute(t.routes - 1);
    const crossed = t.routes > 1 ? { host: last.host, path: `${scaleRoute(0).prefix}/x` } : { host: 'other.test', path: `${last.prefix}/x` };
    const miss = await get(agent, `${t.url}${crossed.path}`, crossed.host);
    if (miss.status !== 404 || !miss.body.includes('OUTRIGGER_NO_ROUTE')) {
      throw new Error(`${t.name}: Host ${crossed.host} ${crossed.path} should be 404 OUTRIGGER_NO_ROUTE, got ${miss.status} ${miss.body.slice(0, 80)}`);
    }
    return { routes: t.routes, answered200: t.routes, upstreamRequests: reached, crossedAnswer: 404 };
  } finally {
    agent.destroy();
  }
}

function writeConfigAtomically(file, text) {
  // The way Kubernetes swaps a ConfigMap: never a half-written file in place.
  writeFileSync(`${file}.tmp`, text);
  renameSync(`${file}.tmp`, file);
}

/** Reloads under a constant load on the last route; reloadCount 0 is the baseline. */
async function reloadUnderLoad(t, { duration, reloadCount, leadS }) {
  const last = scaleRoute(t.routes - 1);
  const hostOf = (k) => (i) => (i === 0 && k > 0 ? `svc0-v${k}.test` : scaleRoute(i).host);
  const reloads = [];
  const agent = new http.Agent({ keepAlive: false });
  let loop = Promise.resolve();
  const start = now();
  // No reload starts in the last second of the load, so each one is under load throughout.
  const deadline = start + (duration - 1) * 1000;
  const doReloads = async () => {
    await sleep(leadS * 1000);
    for (let k = (t.reloadVersion || 0) + 1; reloads.length < reloadCount && now() < deadline; k++) {
      writeConfigAtomically(t.configFile, routeScaleConfig({ routes: t.routes, ...t.ports, hostOf: hostOf(k) }));
      const t0 = now();
      const r = await httpRequest(`${t.adminUrl}/reload`, { method: 'POST', timeoutMs: 10000 });
      const wallMs = now() - t0;
      t.reloadVersion = k;
      let result = null;
      try {
        result = JSON.parse(r.body).result;
      } catch {
        /* not JSON */
      }
      // The new config is in force: route 0 answers on its new host, and no longer on the old.
      const fresh = await get(agent, `${t.url}${scaleRoute(0).prefix}/new`, hostOf(k)(0));
      const stale = await get(agent, `${t.url}${scaleRoute(0).prefix}/old`, hostOf(k - 1)(0));
      reloads.push({ k, wallMs, status: r.status, result, newHostStatus: fresh.status, oldHostStatus: stale.status });
      await sleep(300);
    }
  };
  const r = await runLoad({
    url: `${t.url}${last.prefix}/bench`,
    headers: { host: last.host },
    connections: RELOAD_STAGGER,
    stagger: RELOAD_STAGGER,
    overallRate: RELOAD_RATE,
    duration,
    watch: { proxy: t.pid },
    onStart: () => {
      if (reloadCount > 0) loop = doReloads();
    },
  });
  await loop;
  agent.destroy();
  const non200 = Object.entries(r.statusCodes).reduce((a, [c, n]) => a + (c === '200' ? 0 : n), 0);
  return { ...r, reloads, failed: r.errors + r.timeouts + non200 };
}

/** /metrics scrapes while the gap probe runs on the admin /livez. */
async function scrapeWithProbe(t, { scrapes, estimateMs }) {
  // Long enough for every scrape at 1.3× the first one's time, plus 1 s; at most 60 s.
  const duration = Math.min(60, Math.ceil(0.5 + (scrapes * (1.3 * estimateMs + 200)) / 1000 + 1));
  const results = [];
  let loop = Promise.resolve();
  const doScrapes = async (deadline) => {
    await sleep(500);
    while (results.length < scrapes && now() + 1.3 * estimateMs + 300 < deadline) {
      const s = await scrape(t);
      const lagMax = metricSum(s.text, 'nodejs_eventloop_lag_max_seconds');
      const reloadsSucceeded = metricSum(s.text, 'outrigger_config_reloads_total', (l) => l.includes('result="success"'));
      results.push({ startMs: s.startMs, endMs: s.endMs, ms: s.ms, bytes: s.bytes, series: seriesCount(s.text), lagMaxMs: lagMax * 1000, reloadsSucceeded });
      await sleep(200);
    }
  };
  const probe = await runLoad({
    worker: probeWorker,
    url: `${t.adminUrl}/livez`,
    duration,
    onStart: () => {
      loop = doScrapes(now() + duration * 1000);
    },
  });
  await loop;
  // A gap [at - gap, at] overlapping a scrape (its request until its last byte, plus 5 ms) is
  // counted as the scrape's; the others are the machine's background.
  const during = (at, gap) => results.some((s) => at - gap < s.endMs + 5 && at > s.startMs);
  let inside = 0;
  let outside = 0;
  let over20 = 0;
  for (const [at, gap] of probe.gaps) {
    if (during(at, gap)) {
      inside = Math.max(inside, gap);
      if (gap > 20) over20++;
    } else outside = Math.max(outside, gap);
  }
  return { duration, scrapes: results, probe: { requests: probe.requests, errors: probe.errors, maxGapMs: probe.maxGapMs }, stallMs: inside, backgroundGapMs: outside, gapsOver20: over20 };
}

export async function run(ctx) {
  if (!ctx.wants('outrigger')) {
    return { title, table: '_skipped: this scenario needs the outrigger target_', summary: {}, raw: [], checks: [] };
  }
  const upstream = await startUpstream();
  let targets = [];
  try {
    // Started together (a 1,000-route config takes a second or two to load); if one fails,
    // the others are stopped in the finally block below.
    const started = await Promise.allSettled(
      SIZES.map((n) =>
        startOutrigger({ upstreamUrl: upstream.url, name: `routes-${n}`, config: (ports) => routeScaleConfig({ routes: n, ...ports }), readyTimeoutMs: 60000 }).then((t) => ({
          ...t,
          routes: n,
          loadResponses: 0,
        })),
      ),
    );
    targets = started.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = started.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    const reach = {};
    for (const t of targets) reach[t.name] = await checkReachable(t, upstream);
    ctx.log('  every route of every process answers 200 and reaches the upstream');

    const { byTarget, raw } = await interleave(ctx, targets, async (t, _round, duration) => {
      const last = scaleRoute(t.routes - 1);
      const before = await upstream.requests();
      const r = await runLoad({
        url: `${t.url}${last.prefix}/bench`,
        headers: { host: last.host },
        connections: CONNECTIONS,
        duration,
        watch: { proxy: t.pid, upstream: upstream.pid },
      });
      t.loadResponses += r.responses;
      return { ...r, upstreamRequests: (await upstream.requests()) - before };
    });

    // The proxy's own count: the load went to the last route, and nowhere else.
    const closed = {};
    let firstScrapeMs = null;
    let reloadsBefore = null;
    for (const t of targets) {
      const s = summarize(byTarget[t.name]);
      const sc = await scrape(t);
      const last = scaleRoute(t.routes - 1).name;
      const ok200 = (labels) => labels.includes('code="200"');
      s.lastRoute200 = metricSum(sc.text, 'outrigger_requests_total', (l) => ok200(l) && l.includes(`route="${last}"`));
      s.otherRoutes200 = metricSum(sc.text, 'outrigger_requests_total', (l) => ok200(l) && !l.includes(`route="${last}"`));
      // Every response the load received, plus the reachability request.
      s.loadResponses = t.loadResponses + 1;
      s.upstreamPerResponse = median(byTarget[t.name].map((r) => (r.responses ? r.upstreamRequests / r.responses : null)));
      closed[t.name] = s;
      if (t.routes === 1000) {
        firstScrapeMs = sc.ms;
        reloadsBefore = metricSum(sc.text, 'outrigger_config_reloads_total', (l) => l.includes('result="success"'));
      }
    }
    const one = closed['routes-1'];
    const rows1 = targets.map((t) => {
      const s = closed[t.name];
      return [
        fmt(t.routes),
        fmt(s.rps),
        ratio(s.rps, one.rps),
        ms(s.p50Us),
        ms(s.p99Us),
        fmt(s.cpuUsPerReq, 1),
        ratio(s.cpuUsPerReq, one.cpuUsPerReq),
        fmt(s.upstreamPerResponse, 3),
        `${fmt(s.lastRoute200)} / ${fmt(s.loadResponses)}`,
        fmt(s.otherRoutes200),
        s.errors ? `${s.errors} errors; ${statusSummary(s.statusCodes)}` : statusSummary(s.statusCodes),
      ];
    });
    const table1 = mdTable(
      ['routes', 'req/s', '× 1 route', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'CPU × 1 route', 'upstream req/response', "last route's 200s (proxy) / responses, warm-up included", "other routes' 200s", 'responses in the rounds'],
      rows1,
    );

    // Reloads under a constant load, at 1,000 routes.
    const big = targets.find((t) => t.routes === 1000);
    const reloadDuration = ctx.smoke ? 2 : Math.max(ctx.duration, 12);
    const reloadCount = ctx.smoke ? 1 : 10;
    const leadS = ctx.smoke ? 0.3 : 1;
    ctx.log(`  routes-1000: ${RELOAD_RATE} req/s ${ctx.smoke ? '' : `for ${ctx.duration}s without reloads, then `}for ${reloadDuration}s with up to ${reloadCount} reload(s)`);
    // The same load without reloads, for its latency (not in a smoke run, to keep that short).
    const baseline = ctx.smoke ? null : await reloadUnderLoad(big, { duration: ctx.duration, reloadCount: 0, leadS });
    const withReloads = await reloadUnderLoad(big, { duration: reloadDuration, reloadCount, leadS });
    const rl = withReloads.reloads;
    const wall = rl.map((r) => r.wallMs);
    const reload = {
      count: rl.length,
      medianMs: median(wall),
      maxMs: wall.length ? Math.max(...wall) : null,
      allSucceeded: rl.every((r) => r.status === 200 && r.result === 'success'),
      inForce: rl.length > 0 && rl.every((r) => r.newHostStatus === 200 && r.oldHostStatus === 404),
      failed: withReloads.failed,
      baselineFailed: baseline?.failed ?? null,
    };

    // /metrics at 1,000 routes.
    const scrapes = ctx.smoke ? 2 : 20;
    ctx.log(`  routes-1000: ${scrapes} /metrics scrapes with the /livez gap probe`);
    const sp = await scrapeWithProbe(big, { scrapes, estimateMs: firstScrapeMs ?? 1000 });
    const sMs = sp.scrapes.map((s) => s.ms);
    const last = sp.scrapes[sp.scrapes.length - 1];
    // lag_max of scrape i covers the time since scrape i-1 collected, so scrape 0's is left out
    // (it covers the reloads before it).
    const lagMaxMs = sp.scrapes.length > 1 ? Math.max(...sp.scrapes.slice(1).map((s) => s.lagMaxMs)) : null;
    const reloadsAfter = last ? last.reloadsSucceeded : null;
    const metrics = {
      scrapes: sp.scrapes.length,
      medianMs: median(sMs),
      maxMs: sMs.length ? Math.max(...sMs) : null,
      bytes: last?.bytes ?? null,
      series: last?.series ?? null,
      stallMs: sp.stallMs,
      backgroundGapMs: sp.backgroundGapMs,
      gapsOver20: sp.gapsOver20,
      lagMaxMs,
      probeRequests: sp.probe.requests,
      probeErrors: sp.probe.errors,
    };
    reload.successCounterDelta = reloadsBefore === null || reloadsAfter === null ? null : reloadsAfter - reloadsBefore;

    const loadRow = (label, r, n) => [
      label,
      fmt(n),
      n ? fmt(reload.medianMs, 0) : '—',
      n ? fmt(reload.maxMs, 0) : '—',
      fmt(r.rps),
      ms(r.latency.p99Us),
      ms(r.latency.maxUs),
      fmt(r.failed),
      n ? (reload.inForce ? 'yes' : '**no**') : '—',
    ];
    const table2 = mdTable(
      ['1,000 routes, constant load', 'reloads', '/reload median ms', '/reload max ms', 'req/s', 'p99 ms', 'max ms', 'failed or non-200', 'new config in force'],
      [
        ...(baseline ? [loadRow(`${fmt(RELOAD_RATE)} req/s, no reload (${ctx.duration}s)`, baseline, 0)] : []),
        loadRow(`${fmt(RELOAD_RATE)} req/s with reloads (${reloadDuration}s)`, withReloads, rl.length),
      ],
    );
    const table3 = mdTable(
      ['1,000 routes', 'scrapes', 'GET /metrics median ms', 'max ms', 'bytes', 'samples', 'longest /livez gap during scrapes ms', 'longest gap otherwise ms', 'gaps > 20 ms', 'nodejs_eventloop_lag_max max ms'],
      [['after traffic on every route', fmt(metrics.scrapes), fmt(metrics.medianMs, 1), fmt(metrics.maxMs, 1), fmt(metrics.bytes), fmt(metrics.series), fmt(metrics.stallMs, 1), fmt(metrics.backgroundGapMs, 1), fmt(metrics.gapsOver20), fmt(metrics.lagMaxMs, 1)]],
    );
    const table = [table1, '', 'Reloads under a constant load, 1,000 routes:', '', table2, '', '/metrics at 1,000 routes, every route requested at least once:', '', table3].join('\n');

    const c100 = closed['routes-100'];
    const c1000 = closed['routes-1000'];
    const lastOk = targets.every((t) => {
      const s = closed[t.name];
      return s.lastRoute200 >= s.loadResponses && s.lastRoute200 <= s.loadResponses * 1.01 + CONNECTIONS * (ctx.rounds + 1) && s.otherRoutes200 === t.routes - 1;
    });
    const checks = [
      check(
        'CPU per request at 100 and 1,000 routes within 1.10× of 1 route',
        `100: ${ratio(c100.cpuUsPerReq, one.cpuUsPerReq)}, 1,000: ${ratio(c1000.cpuUsPerReq, one.cpuUsPerReq)} (${fmt(one.cpuUsPerReq, 1)} / ${fmt(c100.cpuUsPerReq, 1)} / ${fmt(c1000.cpuUsPerReq, 1)} µs)`,
        c100.cpuUsPerReq <= 1.1 * one.cpuUsPerReq && c1000.cpuUsPerReq <= 1.1 * one.cpuUsPerReq,
      ),
      check('the load hits the last route (the proxy counts its 200s there, none elsewhere)', lastOk ? 'yes' : 'no', lastOk),
      check('POST /reload at 1,000 routes under 200 ms', `median ${fmt(reload.medianMs, 0)} ms, max ${fmt(reload.maxMs, 0)} ms over ${reload.count}`, reload.count ? reload.maxMs < 200 : null),
      check('no failed or non-200 response during the reloads, and each reload in force', `${fmt(reload.failed)} failed; in force: ${reload.inForce ? 'yes' : 'no'}`, reload.count ? reload.failed === 0 && reload.inForce && reload.allSucceeded : null),
      check('GET /metrics at 1,000 routes under 50 ms', `median ${fmt(metrics.medianMs, 1)} ms, max ${fmt(metrics.maxMs, 1)} ms, ${fmt(metrics.bytes)} bytes`, metrics.scrapes ? metrics.maxMs < 50 : null),
      check('no event-loop stall over 20 ms during a scrape', `longest /livez gap ${fmt(metrics.stallMs, 1)} ms; lag_max ${fmt(metrics.lagMaxMs, 1)} ms`, metrics.scrapes ? metrics.stallMs <= 20 : null),
    ];
    const notes = [
      `Three Outrigger processes with 1, 100 and 1,000 routes; route i matches host \`svc<i>.test\` and path prefix \`/api/p<i>\` and has the bench's timeout, retry, breaker (its own) and fallback. GET \`/api/p<n-1>/bench\` with Host \`svc<n-1>.test\`: the last route. Closed loop, ${CONNECTIONS} connections, ${ctx.rounds} round(s) of ${ctx.duration}s per process, interleaved; medians shown.`,
      'Before the load every route of each process answered 200 on its own host and prefix and reached the upstream, and a host and prefix of two different routes got 404 OUTRIGGER_NO_ROUTE.',
      `Reloads: the config file is replaced (write and rename) with route 0 on a new host, then \`POST /reload\` on the admin port is timed from the bench process; after each, the new host answers ${reload.inForce ? '200 and the old one 404' : 'as checked (see the raw results)'}. ${reload.count} reload(s), 300 ms apart, during a ${fmt(RELOAD_RATE)} req/s load (${RELOAD_STAGGER} staggered connections) on the last route. outrigger_config_reloads_total{result="success"} grew by ${fmt(reload.successCounterDelta)}${reload.successCounterDelta === reload.count ? ' (the file watcher added none of its own)' : ''}.`,
      "/metrics: GET on the metrics port from the bench process, 200 ms apart; meanwhile a child process sends GET /livez to the admin port back to back on one keep-alive connection, and the longest gap between two answers is the longest stall. nodejs_eventloop_lag_max_seconds (prom-client) is read from scrapes 2 to N; it cannot show a scrape's own stall: prom-client resets its histogram inside the scrape, and Node's event-loop-delay histogram drops the first interval after a reset, which is the stalled one.",
    ];
    return {
      title,
      upstream: upstream.label,
      table,
      summary: { closedLoop: closed, reachability: reach, reload: { ...reload, reloads: rl, baseline: baseline && summarizeLoad(baseline), withReloads: summarizeLoad(withReloads) }, metrics: { ...metrics, each: sp.scrapes } },
      raw,
      checks,
      notes,
    };
  } finally {
    // In parallel: each Outrigger is given 500 ms of its graceful drain before SIGKILL.
    await Promise.allSettled(targets.map((t) => t.stop()));
    await upstream.stop();
  }
}

function summarizeLoad(r) {
  return { rps: r.rps, responses: r.responses, statusCodes: r.statusCodes, errors: r.errors, timeouts: r.timeouts, failed: r.failed, latency: r.latency, cpuUsPerResponse: r.cpu.proxy.usPerResponse };
}
