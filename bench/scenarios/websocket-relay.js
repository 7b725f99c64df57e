// Scenario websocket-relay: messages per second and CPU per message of Outrigger's
// WebSocket relay, next to a raw byte tunnel (lib/ref-tunnel.js: net pipes both ways after
// the upgrade handshake, forwarded unchanged) and the echo upstream alone (direct).
// 32 ws connections, 128-byte binary messages, in two modes: ping-pong (one message in
// flight per connection) and pipelined (16 in flight per connection). Every echo is
// checked for order (sequence numbers); CPU is the proxy process's utime+stime from
// /proc/<pid>/stat over the load, divided by the echoes received.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import { startOutrigger } from '../lib/outrigger.js';
import { runLoad } from '../lib/load.js';
import { freePort, makeTmpDir, startProcess, waitForHttp, waitForPort, tail } from '../lib/proc.js';
import { interleave, fmt, ms, ratio, mdTable, startAll, stopAll, med } from '../lib/common.js';

export const name = 'websocket-relay';
export const title = 'WebSocket relay: 32 connections, 128-byte messages, ping-pong and pipelined';
const here = fileURLToPath(new URL('.', import.meta.url));
const worker = fileURLToPath(new URL('../lib/ws-pipeline-worker.js', import.meta.url));
const CONNECTIONS = 32;
const MESSAGE_SIZE = 128;
const MODES = [
  { key: 'ping-pong', depth: 1, label: 'ping-pong (1 in flight per connection)' },
  { key: 'pipelined', depth: 16, label: 'pipelined (16 in flight per connection)' },
];
const LABELS = {
  direct: 'direct (no proxy)',
  outrigger: 'Outrigger (WebSocket relay)',
  'tunnel-ref': 'raw byte tunnel (net pipe)',
};

async function startEchoUpstream() {
  const port = await freePort();
  const dir = makeTmpDir('outrigger-bench-wsr-');
  const errFile = join(dir, 'stderr.log');
  const proc = startProcess(process.execPath, [join(here, '../lib/ws-echo-server.js'), '--port', String(port)], { stderrFile: errFile });
  try {
    await waitForHttp(`http://127.0.0.1:${port}/`, { proc, what: 'ws echo upstream' });
  } catch (err) {
    await proc.stop();
    throw new Error(`${err.message}\n${tail(errFile)}`);
  }
  const wsVersion = createRequire(import.meta.url)('ws/package.json').version;
  return { url: `http://127.0.0.1:${port}`, port, pid: proc.pid, label: `ws ${wsVersion} echo server (no compression) on Node ${process.version}`, stop: () => proc.stop() };
}

async function startTunnel(upstream) {
  const port = await freePort();
  const dir = makeTmpDir('outrigger-bench-tunnel-');
  const errFile = join(dir, 'stderr.log');
  const proc = startProcess(process.execPath, [join(here, '../lib/ref-tunnel.js'), '--port', String(port), '--target', upstream.url], { stderrFile: errFile });
  try {
    await waitForPort(port, { proc, what: 'tunnel-ref' });
  } catch (err) {
    await proc.stop();
    throw new Error(`${err.message}\n${tail(errFile)}`);
  }
  return { name: 'tunnel-ref', kind: 'tunnel-ref', url: `http://127.0.0.1:${port}`, pid: proc.pid, stop: () => proc.stop() };
}

function startTarget(kind, upstream) {
  if (kind === 'direct') return { name: 'direct', kind, url: upstream.url, pid: null, stop: async () => {} };
  if (kind === 'outrigger') return startOutrigger({ upstreamUrl: upstream.url, name: 'outrigger' });
  return startTunnel(upstream);
}

export async function run(ctx) {
  const upstream = await startEchoUpstream();
  const kinds = ['direct', 'outrigger', 'tunnel-ref'].filter(ctx.wants);
  let targets = [];
  try {
    targets = await startAll(kinds.map((k) => () => startTarget(k, upstream)));
    const wsUrl = (t) => `${t.url.replace(/^http/, 'ws')}/ws`;
    // Probe each target once; a target whose upgrade fails is shown as not supported.
    const unsupported = {};
    const live = [];
    for (const t of targets) {
      const probe = await runLoad({ worker, url: wsUrl(t), connections: 1, duration: 0.2, messageSize: MESSAGE_SIZE, depth: 1, watch: {} });
      if (probe.supported) live.push(t);
      else unsupported[t.name] = probe.reason;
    }
    const summary = {};
    const raw = {};
    const rows = [];
    for (const mode of MODES) {
      ctx.log(`mode ${mode.key}`);
      const { byTarget, raw: modeRaw } = await interleave(ctx, live, (t, _round, duration) =>
        runLoad({
          worker,
          url: wsUrl(t),
          connections: CONNECTIONS,
          duration,
          messageSize: MESSAGE_SIZE,
          depth: mode.depth,
          watch: t.pid === null ? { upstream: upstream.pid } : { proxy: t.pid, upstream: upstream.pid },
        }),
      );
      raw[mode.key] = modeRaw;
      const s = {};
      for (const t of targets) {
        if (unsupported[t.name]) {
          s[t.name] = { supported: false, reason: unsupported[t.name] };
          continue;
        }
        const rs = byTarget[t.name];
        const failed = rs.find((r) => !r.supported);
        s[t.name] = failed
          ? { supported: false, reason: failed.reason }
          : {
              supported: true,
              messagesPerSecond: med(rs, (r) => r.rps),
              p50Us: med(rs, (r) => r.latency.p50Us),
              p99Us: med(rs, (r) => r.latency.p99Us),
              proxyCpuUsPerMessage: t.pid === null ? null : med(rs, (r) => r.cpu.proxy.usPerResponse),
              upstreamCpuUsPerMessage: med(rs, (r) => r.cpu.upstream.usPerResponse),
              echoes: rs.reduce((a, r) => a + r.responses, 0),
              orderErrors: rs.reduce((a, r) => a + r.orderErrors, 0),
              errors: rs.reduce((a, r) => a + r.errors, 0),
            };
      }
      summary[mode.key] = s;
      const d = s.direct?.supported ? s.direct : null;
      const tunnel = s['tunnel-ref']?.supported ? s['tunnel-ref'] : null;
      for (const t of targets) {
        const x = s[t.name];
        if (!x.supported) {
          rows.push([mode.key, LABELS[t.kind], '—', '—', '—', '—', '—', '—', '—', `not supported (${x.reason})`]);
          continue;
        }
        const status = x.orderErrors || x.errors ? `${x.orderErrors} order errors, ${x.errors} errors` : 'ok, in order';
        rows.push([
          mode.key,
          LABELS[t.kind],
          fmt(x.messagesPerSecond),
          d ? ratio(x.messagesPerSecond, d.messagesPerSecond) : '—',
          ms(x.p50Us, 3),
          ms(x.p99Us, 3),
          x.proxyCpuUsPerMessage === null ? '—' : fmt(x.proxyCpuUsPerMessage, 1),
          x.proxyCpuUsPerMessage === null || !tunnel || t.kind === 'tunnel-ref' ? '—' : ratio(x.proxyCpuUsPerMessage, tunnel.proxyCpuUsPerMessage),
          fmt(x.upstreamCpuUsPerMessage, 1),
          status,
        ]);
      }
    }
    const table = mdTable(['mode', 'target', 'messages/s', '× direct', 'p50 RTT ms', 'p99 RTT ms', 'proxy CPU µs/msg', 'CPU × tunnel', 'upstream CPU µs/msg', 'status'], rows);
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw,
      checks: [],
      notes: [
        `${CONNECTIONS} ws connections (no compression), ${MESSAGE_SIZE}-byte binary messages to an echo upstream; ${MODES.map((m) => m.label).join(', ')}; ${ctx.rounds} round(s) of ${ctx.duration}s per target and mode, interleaved; medians shown.`,
        'A message is one round trip: client → proxy → upstream and its echo back, so the proxy relays two frames per message. messages/s counts the echoes received during the round; CPU µs/msg is the process\'s utime+stime (/proc/<pid>/stat, all threads) over the load, divided by every echo received (the in-flight tail after the round included).',
        'Every message carries a sequence number per connection; an echo out of order, lost or duplicated is an order error.',
        'The raw byte tunnel (bench/lib/ref-tunnel.js) pipes TCP both ways after forwarding the upgrade handshake unchanged: no routing, policies, metrics or framing. It is the floor for a Node proxy on this path.',
      ],
    };
  } finally {
    await stopAll(targets);
    await upstream.stop();
  }
}
