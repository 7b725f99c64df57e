// Scenario 7, websocket: an echo over WebSocket through the proxy vs direct.
// Reports messages/s and the round-trip p50/p99 with 16 connections in a closed
// loop (64-byte messages). A target whose upgrade fails is reported as
// "not supported" instead of failing the run.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTarget, TARGET_LABELS } from '../lib/targets.js';
import { runLoad } from '../lib/load.js';
import { freePort, makeTmpDir, startProcess, waitForHttp, tail } from '../lib/proc.js';
import { createRequire } from 'node:module';
import { interleave, fmt, ms, ratio, mdTable, startAll, stopAll, med } from '../lib/common.js';

export const name = 'websocket';
export const title = 'WebSocket echo: 16 connections, closed loop, 64-byte messages';
const here = fileURLToPath(new URL('.', import.meta.url));
const CONNECTIONS = 16;

async function startEchoUpstream() {
  const port = await freePort();
  const dir = makeTmpDir('outrigger-bench-ws-');
  const errFile = join(dir, 'stderr.log');
  const proc = startProcess(process.execPath, [join(here, '../lib/ws-echo-server.js'), '--port', String(port)], { stderrFile: errFile });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/`, { proc, what: 'ws echo upstream' });
  } catch (err) {
    await proc.stop();
    throw new Error(`${err.message}\n${tail(errFile)}`);
  }
  return { url: `http://127.0.0.1:${port}`, port, pid: proc.pid, label: `ws ${createRequire(import.meta.url)('ws/package.json').version} echo server on Node ${process.version}`, stop: () => proc.stop() };
}

export async function run(ctx) {
  const upstream = await startEchoUpstream();
  // The undici reference has no upgrade path, so it is not relevant here.
  const kinds = ['direct', 'outrigger', 'http-proxy-ref'].filter(ctx.wants);
  let targets = [];
  try {
    targets = await startAll(kinds.map((k) => () => startTarget(k, upstream)));
    const worker = fileURLToPath(new URL('../lib/ws-load-worker.js', import.meta.url));
    const unsupported = {};
    const live = [];
    // Probe each target once; skip the rounds for those that cannot upgrade.
    for (const t of targets) {
      const probe = await runLoad({ worker, url: `${t.url.replace(/^http/, 'ws')}/ws`, connections: 1, duration: 0.2, watch: {} });
      if (probe.supported) live.push(t);
      else unsupported[t.name] = probe.reason;
    }
    const { byTarget, raw } = await interleave(ctx, live, (t, _round, duration) =>
      runLoad({ worker, url: `${t.url.replace(/^http/, 'ws')}/ws`, connections: CONNECTIONS, duration, watch: { proxy: t.pid } }),
    );
    const summary = {};
    for (const t of targets) {
      if (unsupported[t.name]) {
        summary[t.name] = { supported: false, reason: unsupported[t.name] };
        continue;
      }
      const rs = byTarget[t.name];
      const failed = rs.find((r) => !r.supported);
      summary[t.name] = failed
        ? { supported: false, reason: failed.reason }
        : {
            supported: true,
            rps: med(rs, (r) => r.rps),
            p50Us: med(rs, (r) => r.latency.p50Us),
            p99Us: med(rs, (r) => r.latency.p99Us),
            cpuUsPerMsg: med(rs, (r) => r.cpu.proxy.usPerResponse),
            errors: rs.reduce((a, r) => a + r.errors, 0),
          };
    }
    const d = summary.direct?.supported ? summary.direct : null;
    const table = mdTable(
      ['target', 'messages/s', '× direct', 'p50 RTT ms', 'p99 RTT ms', 'proxy CPU µs/msg', 'status'],
      targets.map((t) => {
        const s = summary[t.name];
        if (!s.supported) return [TARGET_LABELS[t.kind], '—', '—', '—', '—', '—', `not supported (${s.reason})`];
        return [
          TARGET_LABELS[t.kind],
          fmt(s.rps),
          d ? ratio(s.rps, d.rps) : '—',
          ms(s.p50Us, 3),
          ms(s.p99Us, 3),
          t.kind === 'direct' ? '—' : fmt(s.cpuUsPerMsg, 1),
          s.errors ? `ok, ${s.errors} errors` : 'ok',
        ];
      }),
    );
    const checks = [];
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw,
      checks,
      notes: [
        `${CONNECTIONS} WebSocket connections (ws client, no compression), each sending a 64-byte message and waiting for its echo before the next; ${ctx.rounds} round(s) of ${ctx.duration}s per target, interleaved; medians shown.`,
        'The undici reference forwarder has no upgrade path and is left out; node-http-proxy proxies the upgrade with `ws: true`.',
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
