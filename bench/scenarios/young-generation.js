// Scenario: the young generation. Node sizes V8's semi-spaces from the memory the process may
// use: under a cgroup limit of 512 MiB or less (the chart's sidecar limit is 256Mi) it picks
// the minimum, 1 MiB, where a proxy scavenges every few dozen requests and promotes in-flight
// ones. The image therefore runs node with NODE_OPTIONS=--max-semi-space-size=16 (Dockerfile).
// Three Outrigger processes, interleaved: 1 MiB semi-spaces (what a <=512 MiB container
// gets without the flag; a cgroup needs root, the flag gives V8 the same size), the image's
// setting, and Node's default without a limit (up to 32 MiB here). Closed loop, 64
// connections, with wrk when it is installed (it costs a fraction of autocannon's CPU).
import { startUpstream } from '../lib/upstream.js';
import { startTarget } from '../lib/targets.js';
import { imageNodeOptions } from '../lib/outrigger.js';
import { interleave, fmt, ms, ratio, mdTable, check, startAll, stopAll } from '../lib/common.js';
import { haveWrk, runGenerator } from '../lib/wrk.js';
import { rssMB } from '../lib/proc.js';
import { summarize } from './throughput.js';

export const name = 'young-generation';
export const title = "Young generation: 1 MiB semi-spaces (a ≤512 MiB container's default), the image's, and Node's unlimited default";

export async function run(ctx) {
  if (!ctx.wants('outrigger')) {
    return { title, table: '_skipped: this scenario needs the outrigger target_', summary: {}, raw: [], checks: [] };
  }
  const image = imageNodeOptions();
  const variants = [
    { name: 'semi-1', label: 'Outrigger, --max-semi-space-size=1 (≤512 MiB limit, no flag)', opts: { nodeFlags: ['--max-semi-space-size=1'] } },
    { name: 'image', label: `Outrigger, NODE_OPTIONS=${image} (the image)`, opts: { nodeOptions: image } },
    { name: 'unlimited', label: "Outrigger, Node's default without a memory limit", opts: {} },
  ];
  const upstream = await startUpstream();
  let targets = [];
  try {
    targets = await startAll(variants.map((v) => () => startTarget('outrigger', upstream, { name: v.name, ...v.opts })));
    const generator = haveWrk() ? 'wrk' : 'autocannon';
    const run = await interleave(ctx, targets, async (t, _round, duration) => {
      const opts = { url: `${t.url}/bench`, connections: 64, duration, watch: { proxy: t.pid, upstream: upstream.pid } };
      return { ...(await runGenerator(generator, opts)), rssAfterMB: rssMB(t.pid) };
    });
    const summary = {};
    for (const t of targets) {
      const rs = run.byTarget[t.name];
      summary[t.name] = { ...summarize(rs), rssMaxMB: Math.max(...rs.map((r) => r.rssAfterMB ?? 0)) };
    }
    const img = summary.image;
    const rows = variants.map((v) => {
      const s = summary[v.name];
      return [v.label, fmt(s.rps), ms(s.p50Us), ms(s.p99Us), fmt(s.cpuUsPerReq, 1), ratio(s.cpuUsPerReq, img.cpuUsPerReq), fmt(s.rssMaxMB, 1)];
    });
    const table = mdTable(['target', 'req/s', 'p50 ms', 'p99 ms', 'proxy CPU µs/req', "CPU × the image's", 'RSS after a round MB (max)'], rows);
    const small = summary['semi-1'];
    const free = summary.unlimited;
    const checks = [
      check(
        "the image's young generation: CPU per request below the 1 MiB one a ≤512 MiB container gets without it",
        `${fmt(img.cpuUsPerReq, 1)} vs ${fmt(small.cpuUsPerReq, 1)} µs (${ratio(small.cpuUsPerReq, img.cpuUsPerReq)} without the flag); Node's unlimited default ${fmt(free.cpuUsPerReq, 1)} µs`,
        img.cpuUsPerReq < small.cpuUsPerReq,
      ),
    ];
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw: run.raw,
      checks,
      notes: [
        `Three Outrigger processes with the bench config, ${ctx.rounds} round(s) of ${ctx.duration}s each, interleaved, ${generator} (1 thread, 64 connections); medians shown. RSS is read after each round.`,
        "V8 reads the semi-space size once, when the isolate is created, so it has to be a node flag; the image sets it in NODE_OPTIONS and the proxy logs event node_heap_warning at start-up when it runs under a memory limit of 512 MiB or less without it.",
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
