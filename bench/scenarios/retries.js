// Scenario 5, retries: the upstream fails 20% of requests with 503 (at random).
// Outrigger's route retries gateway errors (attempts: 2) under the default retry
// budget (ratio 0.2, minPerSecond 10) and backoff. Reports req/s, CPU per
// request and upstream attempts per request, counted at the upstream.
import { startUpstream } from '../lib/upstream.js';
import { startTarget, TARGET_LABELS } from '../lib/targets.js';
import { runLoad } from '../lib/load.js';
import { interleave, fmt, ms, mdTable, check, startAll, stopAll, med } from '../lib/common.js';
import { summarize } from './throughput.js';

export const name = 'retries';
export const title = 'Retries: upstream fails 20% with 503';
const FAIL_RATE = 0.2;
// Default budget from the config contract: retries ≤ max(minPerSecond·window, ratio·requests).
const BUDGET = { ratio: 0.2, minPerSecond: 10, windowS: 10 };

export async function run(ctx) {
  const upstream = await startUpstream({ failRate: FAIL_RATE });
  const kinds = ['direct', 'outrigger', 'undici-ref', 'http-proxy-ref'].filter(ctx.wants);
  let targets = [];
  try {
    targets = await startAll(kinds.map((k) => () => startTarget(k, upstream)));
    const { byTarget, raw } = await interleave(ctx, targets, async (t, _round, duration) => {
      const before = await upstream.requests();
      const r = await runLoad({ url: `${t.url}/bench`, connections: 64, duration, watch: { proxy: t.pid, upstream: upstream.pid } });
      const upstreamRequests = (await upstream.requests()) - before;
      const s503 = r.statusCodes['503'] || 0;
      // Allowance: the budget's floor (minPerSecond over the run) on top of ratio·requests.
      const allowed = r.responses ? 1 + BUDGET.ratio + (BUDGET.minPerSecond * Math.max(duration, BUDGET.windowS)) / r.responses : null;
      return {
        ...r,
        upstreamRequests,
        attemptsPerReq: r.responses ? upstreamRequests / r.responses : null,
        client503Share: r.responses ? s503 / r.responses : null,
        allowedAttemptsPerReq: allowed,
      };
    });
    const summary = {};
    for (const t of targets) {
      const rs = byTarget[t.name];
      summary[t.name] = {
        ...summarize(rs),
        attemptsPerReq: med(rs, (r) => r.attemptsPerReq),
        client503Share: med(rs, (r) => r.client503Share),
        allowedAttemptsPerReq: med(rs, (r) => r.allowedAttemptsPerReq),
      };
    }
    const table = mdTable(
      ['target', 'req/s', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'upstream attempts/req', '503 share at client'],
      targets.map((t) => {
        const s = summary[t.name];
        return [
          TARGET_LABELS[t.kind],
          fmt(s.rps),
          ms(s.p50Us),
          ms(s.p99Us),
          t.kind === 'direct' ? '—' : fmt(s.cpuUsPerReq, 1),
          fmt(s.attemptsPerReq, 3),
          `${fmt(s.client503Share * 100, 1)}%`,
        ];
      }),
    );
    const o = summary.outrigger;
    const checks = [];
    if (o) {
      checks.push(
        check(
          'retries: attempts per request within the retry budget',
          `${fmt(o.attemptsPerReq, 3)} attempts/req (budget allows ≤ ${fmt(o.allowedAttemptsPerReq, 3)}); 503 at client ${fmt(o.client503Share * 100, 1)}%`,
          o.attemptsPerReq <= o.allowedAttemptsPerReq + 0.01,
        ),
      );
    }
    return {
      title,
      upstream: `${upstream.label}, ${FAIL_RATE * 100}% of requests answered 503 at random`,
      table,
      summary,
      raw,
      checks,
      notes: [
        `Closed loop, 64 connections, ${ctx.rounds} round(s) of ${ctx.duration}s per target, interleaved; medians shown. Attempts are counted at the upstream.`,
        `Outrigger's route: \`retry: { attempts: 2, on: [connect-failure, reset, gateway-error] }\` with the default budget (ratio ${BUDGET.ratio}, minPerSecond ${BUDGET.minPerSecond}, window ${BUDGET.windowS}s) and backoff (25 ms base, full jitter). Without a budget, 2 retries would cost 1.24 attempts/req; the budget caps it near 1.2. The reference proxies do not retry (1 attempt/req, 20% 503).`,
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
