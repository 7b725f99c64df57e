// Scenario 3, access log on: the throughput scenario (closed loop, 64
// connections) with Outrigger's access log at info written to a file (stdout
// redirected), interleaved with an identical Outrigger whose access log is off.
// The rounds run with autocannon and, when it is installed, again with wrk: autocannon
// competes with the proxy for the two cores, and the two ratios have differed by 10-15%.
import { statSync } from 'node:fs';
import { startUpstream } from '../lib/upstream.js';
import { startTarget } from '../lib/targets.js';
import { interleave, fmt, ms, ratio, mdTable, check, startAll, stopAll } from '../lib/common.js';
import { haveWrk, runGenerator } from '../lib/wrk.js';
import { summarize } from './throughput.js';

export const name = 'access-log';
export const title = 'Access log on: closed loop, 64 connections';

const size = (file) => {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
};

export async function run(ctx) {
  if (!ctx.wants('outrigger')) {
    return { title, table: '_skipped: this scenario needs the outrigger target_', summary: {}, raw: [], checks: [] };
  }
  const upstream = await startUpstream();
  let targets = [];
  try {
    targets = await startAll([
      () => startTarget('outrigger', upstream, { name: 'log-off' }),
      () => startTarget('outrigger', upstream, { name: 'log-on', accessLog: true }),
    ]);
    const generators = haveWrk() ? ['autocannon', 'wrk'] : ['autocannon'];
    const summary = {};
    const raw = [];
    for (const g of generators) {
      ctx.log(`  load generator: ${g}`);
      const run = await interleave(ctx, targets, async (t, _round, duration) => {
        const before = size(t.logFile);
        const opts = { url: `${t.url}/bench`, connections: 64, duration, watch: { proxy: t.pid, upstream: upstream.pid } };
        const r = await runGenerator(g, opts);
        const logBytes = size(t.logFile) - before;
        return { ...r, logBytes, logBytesPerReq: r.responses ? logBytes / r.responses : null };
      });
      raw.push(...run.raw.map((r) => ({ ...r, generator: g })));
      summary[g] = {};
      for (const t of targets) {
        const rs = run.byTarget[t.name];
        const s = summarize(rs);
        const lb = rs.map((r) => r.logBytesPerReq).filter((x) => x !== null);
        s.logBytesPerReq = lb.length ? lb.sort((a, b) => a - b)[Math.floor(lb.length / 2)] : null;
        summary[g][t.name] = s;
      }
    }
    const label = { 'log-off': 'Outrigger, access log off', 'log-on': 'Outrigger, access log on (info, to a file)' };
    const rows = [];
    for (const g of generators) {
      const off = summary[g]['log-off'];
      for (const t of targets) {
        const s = summary[g][t.name];
        rows.push([label[t.name], g, fmt(s.rps), ms(s.p50Us), ms(s.p99Us), fmt(s.cpuUsPerReq, 1), ratio(s.cpuUsPerReq, off.cpuUsPerReq), fmt(s.logBytesPerReq, 0)]);
      }
    }
    const table = mdTable(['target', 'load generator', 'req/s', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', 'CPU × log off', 'log bytes/req'], rows);
    const off = summary.autocannon['log-off'];
    const on = summary.autocannon['log-on'];
    const w = summary.wrk;
    const notes = [
      `Two Outrigger processes with the same config except \`log: { level: info, accessLog: true }\`, stdout redirected to a file; ${ctx.rounds} round(s) of ${ctx.duration}s each per load generator, interleaved; medians shown. wrk (1 thread) runs when it is installed.`,
    ];
    if (!on.logBytesPerReq) notes.push('**Warning: the access-log file did not grow during the load; access logging may not be in effect.**');
    const checks = [
      check(
        'access log on: CPU per request ≤ 1.15× log off',
        `autocannon ${fmt(on.cpuUsPerReq, 1)} vs ${fmt(off.cpuUsPerReq, 1)} µs (${ratio(on.cpuUsPerReq, off.cpuUsPerReq)})${w ? `; wrk ${fmt(w['log-on'].cpuUsPerReq, 1)} vs ${fmt(w['log-off'].cpuUsPerReq, 1)} µs (${ratio(w['log-on'].cpuUsPerReq, w['log-off'].cpuUsPerReq)})` : ''}`,
        // Judged on autocannon, the bench's load generator; wrk's figure is shown beside it.
        on.logBytesPerReq ? on.cpuUsPerReq <= 1.15 * off.cpuUsPerReq : null,
      ),
    ];
    return { title, upstream: upstream.label, table, summary, raw, checks, notes };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
