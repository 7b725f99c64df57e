// Scenario 1, throughput: closed loop, 64 connections, every target in turn.
// Reports req/s, p50/p99/p99.9 latency and the CPU time the proxy process used
// per request (from /proc/<pid>/stat; the load generator runs in its own process).
import os from 'node:os';
import { startUpstream } from '../lib/upstream.js';
import { startTarget, TARGET_LABELS } from '../lib/targets.js';
import { runLoad } from '../lib/load.js';
import { canPin, pinCpus } from '../lib/proc.js';
import { interleave, med, fmt, ms, ratio, mdTable, check, startAll, stopAll, statusSummary } from '../lib/common.js';

export const name = 'throughput';
export const title = 'Throughput: closed loop, 64 connections';
const CONNECTIONS = 64;

/** Every CPU of the machine, for undoing a pin. */
const ALL_CPUS = `0-${Math.max(0, os.cpus().length - 1)}`;

/**
 * Shared by access-log: measure closed-loop throughput for a list of started targets.
 * pinned: the measured proxy alone on CPU 0, the load generator and the upstream on CPU 1
 * (each target pinned only for its own rounds, then let go again).
 */
export async function closedLoop(ctx, targets, upstream, { path = '/bench', pinned = false } = {}) {
  return interleave(ctx, targets, async (t, _round, duration) => {
    const before = await upstream.requests();
    if (pinned && !(pinCpus(t.pid, '0') && pinCpus(upstream.pid, '1'))) throw new Error(`could not pin ${t.name} or the upstream`);
    try {
      const r = await runLoad({
        url: `${t.url}${path}`,
        connections: CONNECTIONS,
        duration,
        watch: { proxy: t.pid, upstream: upstream.pid },
        cpus: pinned ? '1' : undefined,
      });
      const upstreamRequests = (await upstream.requests()) - before;
      return { ...r, upstreamRequests };
    } finally {
      if (pinned) {
        pinCpus(t.pid, ALL_CPUS);
        pinCpus(upstream.pid, ALL_CPUS);
      }
    }
  });
}

export function summarize(results) {
  return {
    rps: med(results, (r) => r.rps),
    p50Us: med(results, (r) => r.latency.p50Us),
    p99Us: med(results, (r) => r.latency.p99Us),
    p999Us: med(results, (r) => r.latency.p999Us),
    cpuUsPerReq: med(results, (r) => r.cpu.proxy.usPerResponse),
    upstreamCpuUsPerReq: med(results, (r) => r.cpu.upstream.usPerResponse),
    errors: results.reduce((a, r) => a + r.errors + r.timeouts, 0),
    statusCodes: results.reduce((acc, r) => {
      for (const [c, n] of Object.entries(r.statusCodes)) acc[c] = (acc[c] || 0) + n;
      return acc;
    }, {}),
  };
}

export async function run(ctx) {
  const upstream = await startUpstream();
  const kinds = ['direct', 'outrigger', 'undici-ref', 'dispatch-ref', 'http-proxy-ref'].filter(ctx.wants);
  let targets = [];
  try {
    targets = await startAll(kinds.map((k) => () => startTarget(k, upstream)));
    const { byTarget, raw } = await closedLoop(ctx, targets, upstream);
    const summary = Object.fromEntries(targets.map((t) => [t.name, summarize(byTarget[t.name])]));
    const d = summary.direct;
    const u = summary['undici-ref'];
    const hp = summary['http-proxy-ref'];
    const dm = summary['dispatch-ref'];
    const o = summary.outrigger;
    const rows = targets.map((t) => {
      const s = summary[t.name];
      const isDirect = t.kind === 'direct';
      return [
        TARGET_LABELS[t.kind],
        fmt(s.rps),
        d ? ratio(s.rps, d.rps) : '—',
        ms(s.p50Us),
        ms(s.p99Us),
        ms(s.p999Us),
        isDirect ? '—' : fmt(s.cpuUsPerReq, 1),
        isDirect || !u ? '—' : ratio(s.cpuUsPerReq, u.cpuUsPerReq),
        fmt(s.upstreamCpuUsPerReq, 1),
        s.errors ? `${s.errors} errors; ${statusSummary(s.statusCodes)}` : statusSummary(s.statusCodes),
      ];
    });
    const table = mdTable(
      ['target', 'req/s', '× direct', 'p50 ms', 'p99 ms', 'p99.9 ms', 'proxy CPU µs/req', 'CPU × undici-ref', 'upstream CPU µs/req', 'responses'],
      rows,
    );
    const checks = [];
    if (o && u) {
      checks.push(check('CPU per proxied request ≤ undici reference', `${fmt(o.cpuUsPerReq, 1)} vs ${fmt(u.cpuUsPerReq, 1)} µs (${ratio(o.cpuUsPerReq, u.cpuUsPerReq)})`, o.cpuUsPerReq <= u.cpuUsPerReq));
      checks.push(check('stretch: CPU per request ≤ 0.8× undici reference', ratio(o.cpuUsPerReq, u.cpuUsPerReq), o.cpuUsPerReq <= 0.8 * u.cpuUsPerReq));
    }
    if (o && dm) {
      checks.push(check('CPU per request ≤ 1.10× dispatch-min', `${fmt(o.cpuUsPerReq, 1)} vs ${fmt(dm.cpuUsPerReq, 1)} µs (${ratio(o.cpuUsPerReq, dm.cpuUsPerReq)})`, o.cpuUsPerReq <= 1.1 * dm.cpuUsPerReq));
    }
    if (o && hp) {
      checks.push(check('throughput ≥ 2× node-http-proxy (unpinned)', `${fmt(o.rps)} vs ${fmt(hp.rps)} req/s (${ratio(o.rps, hp.rps)})`, o.rps >= 2 * hp.rps));
    }
    // The same again with the proxy alone on one core, where the machine allows it.
    let pinnedTable = null;
    let pinnedSummary = null;
    const proxies = targets.filter((t) => t.kind !== 'direct');
    if (ctx.smoke || !canPin() || proxies.length === 0) {
      pinnedTable = `Pinned run: ${ctx.smoke ? 'skipped in a smoke run' : 'not available (needs taskset and two CPUs)'}.`;
    } else {
      ctx.log('  pinned: proxy on CPU 0, load generator and upstream on CPU 1');
      const pinned = await closedLoop(ctx, proxies, upstream, { pinned: true });
      raw.push(...pinned.raw.map((r) => ({ ...r, pinned: true })));
      pinnedSummary = Object.fromEntries(proxies.map((t) => [t.name, summarize(pinned.byTarget[t.name])]));
      const pu = pinnedSummary[proxies.find((t) => t.kind === 'undici-ref')?.name];
      pinnedTable = mdTable(
        ['target (pinned)', 'req/s', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'CPU × undici-ref', 'responses'],
        proxies.map((t) => {
          const p = pinnedSummary[t.name];
          return [TARGET_LABELS[t.kind], fmt(p.rps), ms(p.p50Us), ms(p.p99Us), fmt(p.cpuUsPerReq, 1), pu ? ratio(p.cpuUsPerReq, pu.cpuUsPerReq) : '—', p.errors ? `${p.errors} errors; ${statusSummary(p.statusCodes)}` : statusSummary(p.statusCodes)];
        }),
      );
      const po = pinnedSummary.outrigger;
      const php = pinnedSummary['http-proxy-ref'];
      if (po && php) checks.push(check('throughput ≥ 2× node-http-proxy (pinned)', `${fmt(po.rps)} vs ${fmt(php.rps)} req/s (${ratio(po.rps, php.rps)})`, po.rps >= 2 * php.rps));
    }
    return {
      title,
      upstream: upstream.label,
      table: `${table}\n\n${pinnedTable}`,
      summary,
      pinnedSummary,
      raw,
      checks,
      notes: [
        `Closed loop: ${CONNECTIONS} keep-alive connections, pipelining 1, GET /bench, ${ctx.rounds} round(s) of ${ctx.duration}s per target, interleaved; medians shown.`,
        'CPU µs/req: utime+stime of the proxy process (all threads) from /proc/<pid>/stat over the load window, divided by the responses received.',
        'Pinned: the same load again for each proxy with `taskset`: the proxy alone on CPU 0, the load generator and the upstream on CPU 1, so the proxy does not compete with them for a core.',
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
