// Scenario 2, latency at a fixed rate: 1000 req/s with autocannon's overallRate.
// Reports the latency each proxy adds over direct at p50 and p99.
//
// autocannon's rate limiter lets each connection send its per-second quota back
// to back at the start of each second. To keep this close to an open loop, the
// load runs as STAGGER autocannon instances of 1 connection at RATE/STAGGER req/s,
// started 1000/STAGGER ms apart, so bursts of 50 requests spread over the second.
// Latencies come from each response's own timing (µs resolution), not from
// autocannon's integer-millisecond histogram.
import { startUpstream } from '../lib/upstream.js';
import { startTarget, TARGET_LABELS } from '../lib/targets.js';
import { runLoad } from '../lib/load.js';
import { interleave, med, median, fmt, ms, mdTable, check, startAll, stopAll } from '../lib/common.js';

export const name = 'latency';
export const title = 'Latency at a fixed rate: 1000 req/s';
const RATE = 1000;
const STAGGER = 20;

export async function run(ctx) {
  const upstream = await startUpstream();
  const kinds = ['direct', 'outrigger', 'undici-ref', 'http-proxy-ref'].filter(ctx.wants);
  let targets = [];
  try {
    targets = await startAll(kinds.map((k) => () => startTarget(k, upstream)));
    const { byTarget, raw } = await interleave(ctx, targets, (t, _round, duration) =>
      runLoad({
        url: `${t.url}/bench`,
        connections: STAGGER,
        stagger: STAGGER,
        overallRate: RATE,
        duration,
        watch: { proxy: t.pid },
      }),
    );
    const direct = byTarget.direct;
    // Added latency: per round, target minus direct from the same round; median over rounds.
    const added = (results, key) =>
      direct ? median(results.map((r, i) => (direct[i] ? r.latency[key] - direct[i].latency[key] : null))) : null;
    const summary = Object.fromEntries(
      targets.map((t) => {
        const rs = byTarget[t.name];
        return [
          t.name,
          {
            rps: med(rs, (r) => r.rps),
            p50Us: med(rs, (r) => r.latency.p50Us),
            p99Us: med(rs, (r) => r.latency.p99Us),
            p999Us: med(rs, (r) => r.latency.p999Us),
            addedP50Us: t.kind === 'direct' ? null : added(rs, 'p50Us'),
            addedP99Us: t.kind === 'direct' ? null : added(rs, 'p99Us'),
            cpuUsPerReq: med(rs, (r) => r.cpu.proxy.usPerResponse),
            errors: rs.reduce((a, r) => a + r.errors + r.timeouts + r.non2xx, 0),
          },
        ];
      }),
    );
    const rows = targets.map((t) => {
      const s = summary[t.name];
      const isDirect = t.kind === 'direct';
      return [
        TARGET_LABELS[t.kind],
        fmt(s.rps),
        ms(s.p50Us, 3),
        ms(s.p99Us, 3),
        ms(s.p999Us, 3),
        isDirect ? '—' : ms(s.addedP50Us, 3),
        isDirect ? '—' : ms(s.addedP99Us, 3),
        isDirect ? '—' : fmt(s.cpuUsPerReq, 1),
        fmt(s.errors),
      ];
    });
    const table = mdTable(
      ['target', 'achieved req/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'added p50 ms', 'added p99 ms', 'proxy CPU µs/req', 'errors/non-2xx'],
      rows,
    );
    const o = summary.outrigger;
    const checks = [];
    if (o && direct) {
      checks.push(check('added latency p50 ≤ 0.3 ms at 1000 req/s', `${ms(o.addedP50Us, 3)} ms`, o.addedP50Us <= 300));
      checks.push(check('added latency p99 ≤ 1 ms at 1000 req/s', `${ms(o.addedP99Us, 3)} ms`, o.addedP99Us <= 1000));
    }
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw,
      checks,
      notes: [
        `Offered load ${RATE} req/s (autocannon overallRate) as ${STAGGER} staggered instances of 1 connection at ${RATE / STAGGER} req/s; GET /bench; ${ctx.rounds} round(s) of ${ctx.duration}s, interleaved.`,
        'Added latency = target minus direct in the same round, median over rounds. Latency is per response, at µs resolution, without coordinated-omission correction.',
        'CPU per request at this low rate is higher than in the throughput scenario: each request wakes the event loop on its own.',
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
