// Scenario 4, fail-fast: the route's breaker is isolated over the admin API
// (POST /breakers/bench/isolate on the admin port; no token needed from
// loopback), so every request is answered by the breaker-open fallback without
// touching the upstream. Interleaved with the same Outrigger proxying normally
// (breaker reset), closed loop, 64 connections. autocannon is one Node process: a rejection
// costs the proxy about as much CPU as autocannon spends to send it and read the answer, so
// the scenario records the load generator's CPU too, and runs the same rounds with wrk (a C
// load generator, a fraction of autocannon's cost per request) when wrk is installed.
import { startUpstream } from '../lib/upstream.js';
import { startTarget } from '../lib/targets.js';
import { httpRequest } from '../lib/proc.js';
import { interleave, fmt, ms, ratio, mdTable, check, stopAll, statusSummary, med } from '../lib/common.js';
import { summarize } from './throughput.js';
import { haveWrk, runGenerator } from '../lib/wrk.js';

export const name = 'fail-fast';
export const title = 'Fail-fast: breaker isolated over the admin API';

export async function run(ctx) {
  if (!ctx.wants('outrigger')) {
    return { title, table: '_skipped: this scenario needs the outrigger target_', summary: {}, raw: [], checks: [] };
  }
  const upstream = await startUpstream();
  let proxy = null;
  let floor = null;
  try {
    proxy = await startTarget('outrigger', upstream);
    const modes = [
      { name: 'proxied', label: 'Outrigger, proxied (breaker closed)', isolated: false },
      { name: 'fail-fast', label: 'Outrigger, breaker isolated (fallback 503)', isolated: true },
    ];
    // The floor: node:http sending the fallback's bytes by itself. It bounds what any Node
    // proxy's fail-fast can reach here, so the 3x target can be read against it.
    if (ctx.wants('floor-ref')) {
      floor = await startTarget('floor-ref', upstream);
      modes.push({ name: 'floor', label: 'node:http answering the same 503 alone (floor)', isolated: false, target: floor });
    }
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

    const measureWith = (generator) => async (m, _round, duration) => {
      await setIsolated(m.isolated);
      const before = await upstream.requests();
      const t = m.target ?? proxy;
      const opts = { url: `${t.url}/bench`, connections: 64, duration, watch: { proxy: t.pid, upstream: upstream.pid } };
      // Every fail-fast (and floor) answer is the 503 fallback.
      const r = await runGenerator(generator, opts, { non2xxAs: m.isolated || m.target ? 503 : undefined });
      const upstreamRequests = (await upstream.requests()) - before;
      return {
        ...r,
        upstreamRequests,
        upstreamPerReq: r.responses ? upstreamRequests / r.responses : null,
        proxyCores: r.cpu.proxy.seconds === null ? null : r.cpu.proxy.seconds / duration,
      };
    };
    const generators = haveWrk() ? ['autocannon', 'wrk'] : ['autocannon'];
    const summary = {};
    const raw = [];
    for (const g of generators) {
      ctx.log(`  load generator: ${g}`);
      const run = await interleave(ctx, modes, measureWith(g));
      raw.push(...run.raw.map((r) => ({ ...r, generator: g })));
      summary[g] = {};
      for (const m of modes) {
        const rounds = run.byTarget[m.name];
        summary[g][m.name] = {
          ...summarize(rounds),
          upstreamPerReq: med(rounds, (r) => r.upstreamPerReq),
          proxyCores: med(rounds, (r) => r.proxyCores),
          generatorCores: med(rounds, (r) => r.generatorCores),
        };
      }
    }
    await setIsolated(false);

    const rows = [];
    for (const g of generators) {
      const p = summary[g].proxied;
      for (const m of modes) {
        const s = summary[g][m.name];
        rows.push([m.label, g, fmt(s.rps), ratio(s.rps, p.rps), ms(s.p50Us), ms(s.p99Us), fmt(s.cpuUsPerReq, 1), fmt(s.proxyCores, 2), fmt(s.generatorCores, 2), fmt(s.upstreamPerReq, 3), statusSummary(s.statusCodes)]);
      }
    }
    const table = mdTable(['mode', 'load generator', 'req/s', '× proxied', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'proxy cores', 'generator cores', 'upstream requests/req', 'responses'], rows);
    const a = summary.autocannon;
    const w = summary.wrk;
    const ratioOf = (g) => (g ? g['fail-fast'].rps / g.proxied.rps : null);
    // The load generator is the limit when it is busy all the time and the proxy is not.
    const generatorBound = (g) => g['fail-fast'].generatorCores >= 0.9 && g['fail-fast'].proxyCores !== null && g['fail-fast'].proxyCores <= 0.85;
    const describe = (name, g) =>
      `${name}: ${fmt(g['fail-fast'].rps)} vs ${fmt(g.proxied.rps)} req/s (${ratio(g['fail-fast'].rps, g.proxied.rps)}); fail-fast proxy ${fmt(g['fail-fast'].proxyCores, 2)} cores, generator ${fmt(g['fail-fast'].generatorCores, 2)} cores`;
    const ceiling = a['fail-fast'].cpuUsPerReq ? 1e6 / a['fail-fast'].cpuUsPerReq : null;
    const best = w ?? a;
    const floorNote = best.floor
      ? `the node:http floor (${w ? 'wrk' : 'autocannon'}) answers ${fmt(best.floor.rps)} req/s (${ratio(best.floor.rps, best.proxied.rps)} proxied) at ${fmt(best.floor.cpuUsPerReq, 1)} µs per answer; Outrigger's rejection costs ${fmt(best['fail-fast'].cpuUsPerReq, 1)} µs (${ratio(best['fail-fast'].cpuUsPerReq, best.floor.cpuUsPerReq)} the floor)`
      : 'floor not measured (floor-ref not among --targets)';
    const checks = [
      check(
        'fail-fast throughput ≥ 3× proxied throughput, or the load generator the limit',
        [describe('autocannon', a), w ? describe('wrk', w) : 'wrk not installed', `${fmt(a['fail-fast'].cpuUsPerReq, 1)} µs CPU per rejection: one core would answer ${fmt(ceiling)} req/s (${ratio(ceiling, a.proxied.rps)} proxied)`, floorNote].join('; '),
        ratioOf(a) >= 3 || (w && ratioOf(w) >= 3) || generatorBound(a) || (w && generatorBound(w)),
      ),
      check('fail-fast touches no upstream', generators.map((g) => `${g}: ${fmt(summary[g]['fail-fast'].upstreamPerReq, 3)} upstream requests per request`).join('; '), generators.every((g) => summary[g]['fail-fast'].upstreamPerReq === 0)),
    ];
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw,
      checks,
      notes: [
        `One Outrigger process; before each round the breaker \`bench\` is isolated or reset over the admin API. Closed loop, 64 connections, ${ctx.rounds} round(s) of ${ctx.duration}s per mode and load generator, interleaved; medians shown.`,
        'Proxy cores and generator cores: CPU time over wall time (1.00 = one core busy the whole round). The load generator is the limit when it is near 1.00 and the proxy is not. wrk (1 thread) runs when it is installed; its p50/p99 come from its own --latency report.',
        'Upstream requests are counted at the upstream (nginx stub_status or the node upstream counter).',
        'The floor row is a separate node:http process (bench/lib/ref-floor.js) that sends the fallback\'s bytes without any proxy code: the most a Node server answers on this machine. Its "proxy" columns are its own CPU.',
      ],
    };
  } finally {
    await stopAll([proxy, floor].filter(Boolean));
    await upstream.stop();
  }
}
