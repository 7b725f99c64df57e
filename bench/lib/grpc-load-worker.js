// gRPC load generator child for the grpc-unary scenario (same IPC protocol as load-worker.js:
// 'ready', then 'go' with opts, then 'result').
//
// opts: { target: 'host:port', channels, inFlight, duration (s), messageSize }
// `channels` grpc-js clients (insecure credentials, each its own HTTP/2 connection: a local
// subchannel pool) share `inFlight` unary calls kept in flight in a closed loop: each answer
// releases the next call on the same channel. Each call carries a `messageSize`-byte text and
// a counter; an answer that does not echo the text with n + 1 is a mismatch. Latency is per
// call, in a µs histogram. After `duration` seconds no new call starts; the calls in flight
// finish (each has a 5 s deadline) before the channels close. If a channel does not become
// ready within 5 s: { supported: false, reason }.
import { grpc, loadEcho } from './grpc-common.js';
import { Histogram } from './histogram.js';
import { serveLoad } from './worker-protocol.js';

const Echo = loadEcho();

function ready(client, timeoutMs) {
  return new Promise((resolve, reject) => client.waitForReady(Date.now() + timeoutMs, (err) => (err ? reject(err) : resolve())));
}

async function run(opts) {
  const channels = Math.max(1, opts.channels || 1);
  const inFlight = Math.max(channels, opts.inFlight || channels);
  const text = 'x'.repeat(Math.max(1, opts.messageSize || 64));
  const clients = [];
  for (let i = 0; i < channels; i++) {
    clients.push(new Echo(opts.target, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
  }
  const closeAll = () => clients.forEach((c) => c.close());
  try {
    await Promise.all(clients.map((c) => ready(c, 5000)));
  } catch (err) {
    closeAll();
    return { supported: false, reason: `channel not ready: ${err.message}`, responses: 0 };
  }
  // One probe call per channel, so a target that refuses calls is reported, not measured.
  const probe = await new Promise((resolve) =>
    clients[0].Unary({ text, n: 0 }, { deadline: Date.now() + 5000 }, (err, res) => resolve(err ? `probe call failed: ${grpc.status[err.code] ?? err.code} ${err.details}` : res.n === 1 ? null : 'probe call: wrong answer')),
  );
  if (probe) {
    closeAll();
    return { supported: false, reason: probe, responses: 0 };
  }
  const hist = new Histogram();
  const statuses = {};
  let inWindow = 0; // OK answers before the stop
  let total = 0; // every call completed, the drained tail included (CPU is divided by this)
  let mismatches = 0;
  let stopping = false;
  const started = process.hrtime.bigint();
  await new Promise((resolve) => {
    let running = inFlight;
    const loop = (client, seq) => {
      if (stopping) {
        if (--running === 0) resolve();
        return;
      }
      const t0 = process.hrtime.bigint();
      client.Unary({ text, n: seq }, { deadline: Date.now() + 5000 }, (err, res) => {
        const code = err ? err.code : 0;
        total++;
        statuses[code] = (statuses[code] || 0) + 1;
        if (!err) {
          hist.record(Number(process.hrtime.bigint() - t0) / 1000);
          if (res.text !== text || res.n !== seq + 1) mismatches++;
          if (!stopping) inWindow++;
        }
        loop(client, seq + 1);
      });
    };
    for (let i = 0; i < inFlight; i++) loop(clients[i % channels], i * 1_000_000);
    setTimeout(() => {
      stopping = true;
    }, opts.duration * 1000);
  });
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  closeAll();
  const errors = total - (statuses[0] || 0);
  return {
    supported: true,
    responses: total,
    inWindow,
    durationS: opts.duration,
    wallS,
    rps: inWindow / opts.duration,
    statuses,
    errors,
    mismatches,
    latency: hist.summary(),
  };
}

serveLoad(run);
