// Scenario 4, fail-fast: the route's breaker is isolated over the admin API
// (POST /breakers/bench/isolate on the admin port; no token needed from
// loopback), so every request is answered by the breaker-open fallback without
// touching the upstream. Interleaved with the same Outrigger proxying normally
// (breaker reset), closed loop, 64 connections.
import { startUpstream } from '../lib/upstream.js';
import { startTarget } from '../lib/targets.js';
import { runLoad } from '../lib/load.js';
import { httpRequest } from '../lib/proc.js';
import { interleave, fmt, ms, ratio, mdTable, check, stopAll, statusSummary, med } from '../lib/common.js';
import { summarize } from './throughput.js';

export const name = 'fail-fast';
export const title = 'Fail-fast: breaker isolated over the admin API';

export async function run(ctx) {
  if (!ctx.wants('outrigger')) {
    return { title, table: '_skipped: this scenario needs the outrigger target_', summary: {}, raw: [], checks: [] };
  }
  const upstream = await startUpstream();
  let proxy = null;
  try {
    proxy = await startTarget('outrigger', upstream);
    const modes = [
      { name: 'proxied', label: 'Outrigger, proxied (breaker closed)', isolated: false },
      { name: 'fail-fast', label: 'Outrigger, breaker isolated (fallback 503)', isolated: true },
    ];
    let current = false;
    const setIsolated = async (want) => {
      if (want === current) return;
      if (want) await proxy.isolate('bench');
      else await proxy.reset('bench');
      current = want;
    };
    // Check once that isolation takes effect and the fallback answers.
    await setIsolated(true);
    const probe = await httpRequest(`${proxy.url}/bench`);
    await setIsolated(false);
    if (probe.status !== 503) throw new Error(`after isolating the breaker, GET /bench answered ${probe.status}, expected the 503 fallback`);

    const { byTarget, raw } = await interleave(ctx, modes, async (m, _round, duration) => {
      await setIsolated(m.isolated);
      const before = await upstream.requests();
      const r = await runLoad({ url: `${proxy.url}/bench`, connections: 64, duration, watch: { proxy: proxy.pid, upstream: upstream.pid } });
      const upstreamRequests = (await upstream.requests()) - before;
      return { ...r, upstreamRequests, upstreamPerReq: r.responses ? upstreamRequests / r.responses : null };
    });
    await setIsolated(false);

    const summary = {};
    for (const m of modes) {
      summary[m.name] = { ...summarize(byTarget[m.name]), upstreamPerReq: med(byTarget[m.name], (r) => r.upstreamPerReq) };
    }
    const p = summary.proxied;
    const f = summary['fail-fast'];
    const table = mdTable(
      ['mode', 'req/s', '× proxied', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'upstream requests/req', 'responses'],
      modes.map((m) => {
        const s = summary[m.name];
        return [m.label, fmt(s.rps), ratio(s.rps, p.rps), ms(s.p50Us), ms(s.p99Us), fmt(s.cpuUsPerReq, 1), fmt(s.upstreamPerReq, 3), statusSummary(s.statusCodes)];
      }),
    );
    const checks = [
      check('fail-fast throughput ≥ 3× proxied throughput', `${fmt(f.rps)} vs ${fmt(p.rps)} req/s (${ratio(f.rps, p.rps)})`, f.rps >= 3 * p.rps),
      check('fail-fast touches no upstream', `${fmt(f.upstreamPerReq, 3)} upstream requests per request`, f.upstreamPerReq === 0),
    ];
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw,
      checks,
      notes: [
        `One Outrigger process; before each round the breaker \`bench\` is isolated or reset over the admin API. Closed loop, 64 connections, ${ctx.rounds} round(s) of ${ctx.duration}s per mode, interleaved; medians shown.`,
        'Upstream requests are counted at the upstream (nginx stub_status or the node upstream counter).',
      ],
    };
  } finally {
    if (proxy) await stopAll([proxy]);
    await upstream.stop();
  }
}
