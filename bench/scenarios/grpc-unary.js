// Scenario grpc-unary: unary gRPC calls with a small message, through Outrigger (h2c in, a
// `grpc: true` route, an h2c upstream) and direct to the server. The upstream is a
// @grpc/grpc-js echo server (lib/grpc-echo-server.js); the load is a grpc-js client in a
// child process (lib/grpc-load-worker.js), so its CPU is never counted against the proxy:
// 2 channels (HTTP/2 connections), 32 calls in flight in all, closed loop. Reports calls/s,
// p50/p99 per call, and the proxy's and the server's CPU per call (utime+stime from
// /proc/<pid>/stat over the load, divided by the calls completed).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { startOutrigger } from '../lib/outrigger.js';
import { runLoad } from '../lib/load.js';
import { freePort, makeTmpDir, startProcess, waitForPort, tail } from '../lib/proc.js';
import { interleave, fmt, ms, ratio, mdTable, startAll, stopAll, med } from '../lib/common.js';

export const name = 'grpc-unary';
export const title = 'gRPC unary: grpc-js client, 2 channels, 32 calls in flight, 64-byte message';
const here = fileURLToPath(new URL('.', import.meta.url));
const worker = fileURLToPath(new URL('../lib/grpc-load-worker.js', import.meta.url));
const CHANNELS = 2;
const IN_FLIGHT = 32;
const MESSAGE_SIZE = 64;
const LABELS = {
  direct: 'direct (no proxy)',
  outrigger: 'Outrigger (h2c → h2c, grpc: true)',
};

async function startGrpcUpstream() {
  const port = await freePort();
  const dir = makeTmpDir('outrigger-bench-grpc-');
  const errFile = join(dir, 'stderr.log');
  const proc = startProcess(process.execPath, [join(here, '../lib/grpc-echo-server.js'), '--port', String(port)], { stderrFile: errFile });
  try {
    await waitForPort(port, { proc, what: 'grpc echo upstream' });
  } catch (err) {
    await proc.stop();
    throw new Error(`${err.message}\n${tail(errFile)}`);
  }
  const grpcVersion = createRequire(import.meta.url)('@grpc/grpc-js/package.json').version;
  return { url: `http://127.0.0.1:${port}`, port, pid: proc.pid, grpcVersion, label: `@grpc/grpc-js ${grpcVersion} echo server (Unary) on Node ${process.version}`, stop: () => proc.stop() };
}

function startTarget(kind, upstream) {
  if (kind === 'direct') return { name: 'direct', kind, url: upstream.url, pid: null, stop: async () => {} };
  return startOutrigger({ upstreamUrl: upstream.url, grpc: true, name: 'outrigger' });
}

export async function run(ctx) {
  const upstream = await startGrpcUpstream();
  const kinds = ['direct', 'outrigger'].filter(ctx.wants);
  let targets = [];
  try {
    targets = await startAll(kinds.map((k) => () => startTarget(k, upstream)));
    const hostPort = (t) => t.url.replace(/^http:\/\//, '');
    const load = (t, duration, inFlight = IN_FLIGHT, channels = CHANNELS) =>
      runLoad({
        worker,
        target: hostPort(t),
        channels,
        inFlight,
        duration,
        messageSize: MESSAGE_SIZE,
        watch: t.pid === null ? { upstream: upstream.pid } : { proxy: t.pid, upstream: upstream.pid },
      });
    // Probe each target once; one that cannot carry the call is shown as not supported.
    const unsupported = {};
    const live = [];
    for (const t of targets) {
      const probe = await load(t, 0.2, 1, 1);
      if (probe.supported && probe.responses > 0 && probe.errors === 0) live.push(t);
      else unsupported[t.name] = probe.reason || `probe: ${JSON.stringify(probe.statuses)}`;
    }
    const { byTarget, raw } = await interleave(ctx, live, (t, _round, duration) => load(t, duration));
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
            callsPerSecond: med(rs, (r) => r.rps),
            p50Us: med(rs, (r) => r.latency.p50Us),
            p99Us: med(rs, (r) => r.latency.p99Us),
            proxyCpuUsPerCall: t.pid === null ? null : med(rs, (r) => r.cpu.proxy.usPerResponse),
            upstreamCpuUsPerCall: med(rs, (r) => r.cpu.upstream.usPerResponse),
            calls: rs.reduce((a, r) => a + r.responses, 0),
            errors: rs.reduce((a, r) => a + r.errors, 0),
            mismatches: rs.reduce((a, r) => a + r.mismatches, 0),
            perRound: rs.map((r) => ({ callsPerSecond: r.rps, proxyCpuUsPerCall: r.cpu.proxy?.usPerResponse ?? null, upstreamCpuUsPerCall: r.cpu.upstream.usPerResponse })),
          };
    }
    const d = summary.direct?.supported ? summary.direct : null;
    const rows = targets.map((t) => {
      const x = summary[t.name];
      if (!x.supported) return [LABELS[t.kind], '—', '—', '—', '—', '—', '—', '—', `not supported (${x.reason})`];
      const status = x.errors || x.mismatches ? `${x.errors} errors, ${x.mismatches} wrong answers` : 'all OK';
      return [
        LABELS[t.kind],
        fmt(x.callsPerSecond),
        d ? ratio(x.callsPerSecond, d.callsPerSecond) : '—',
        ms(x.p50Us, 3),
        ms(x.p99Us, 3),
        x.proxyCpuUsPerCall === null ? '—' : fmt(x.proxyCpuUsPerCall, 1),
        x.proxyCpuUsPerCall === null || !d ? '—' : ratio(x.proxyCpuUsPerCall, d.upstreamCpuUsPerCall),
        fmt(x.upstreamCpuUsPerCall, 1),
        status,
      ];
    });
    const table = mdTable(['target', 'calls/s', '× direct', 'p50 ms', 'p99 ms', 'proxy CPU µs/call', 'proxy CPU × server CPU', 'server CPU µs/call', 'status'], rows);
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw,
      checks: [],
      notes: [
        `grpc-js ${upstream.grpcVersion} client in a child process: ${CHANNELS} channels (one HTTP/2 connection each), ${IN_FLIGHT} unary calls in flight in all, closed loop, a ${MESSAGE_SIZE}-byte string and a counter per call; ${ctx.rounds} round(s) of ${ctx.duration}s per target, interleaved; medians shown.`,
        'Outrigger: one `grpc: true` route to an h2c upstream (one node:http2 session), with a 2 s timeout, retries on connect-failure, refused-stream, reset and UNAVAILABLE (so each call body is copied for a replay), a breaker that counts UNAVAILABLE and a trailers-only gRPC fallback, none of them triggered; metrics on, access log off.',
        'calls/s counts the OK answers received during the round. CPU µs/call is the process\'s utime+stime (/proc/<pid>/stat, all threads) over the load, divided by every call completed (the in-flight tail included). "proxy CPU × server CPU" compares the proxy\'s CPU per call with the grpc-js server\'s own, measured in the direct rounds: what relaying a call costs next to serving it.',
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
