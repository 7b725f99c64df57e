// WebSocket load generator child for the websocket-relay scenario (same IPC protocol as
// load-worker.js: 'ready', then 'go' with opts, then 'result').
//
// `connections` ws clients (no compression) each keep `depth` messages of `messageSize`
// bytes in flight against an echo server: depth 1 is ping-pong (send, wait for the echo,
// send the next), depth > 1 is pipelined (each echo releases the next message). Every
// message carries its connection's sequence number, and each echo is checked against the
// one expected next: a lost, duplicated or reordered message counts as an order error.
// Round-trip times go into a µs histogram (FIFO per connection: ws keeps the order).
// After `duration` seconds no new message is sent; the echoes still in flight are awaited
// (2 s at most) before the sockets close. If an upgrade fails: { supported: false, reason }.
import WebSocket from 'ws';
import { Histogram } from './histogram.js';
import { serveLoad } from './worker-protocol.js';

function connect(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const fail = (reason) => {
      ws.removeAllListeners();
      ws.on('error', () => {});
      ws.terminate();
      reject(new Error(reason));
    };
    ws.once('open', () => {
      ws.removeAllListeners('unexpected-response');
      resolve(ws);
    });
    ws.once('unexpected-response', (_req, res) =>
      fail(`upgrade refused: HTTP ${res.statusCode}${res.headers['x-outrigger-error'] ? ` ${res.headers['x-outrigger-error']}` : ''}`),
    );
    ws.once('error', (err) => fail(`upgrade failed: ${err.message}`));
  });
}

async function run(opts) {
  const size = Math.max(8, opts.messageSize || 128);
  const depth = Math.max(1, opts.depth || 1);
  const sockets = [];
  try {
    for (let i = 0; i < opts.connections; i++) sockets.push(await connect(opts.url, 5000));
  } catch (err) {
    for (const s of sockets) s.terminate();
    return { supported: false, reason: err.message, responses: 0 };
  }
  const hist = new Histogram();
  let inWindow = 0; // echoes received before the stop
  let total = 0; // all echoes, the drained tail included (CPU is divided by this)
  let orderErrors = 0;
  let errors = 0;
  let stopping = false;
  const started = process.hrtime.bigint();
  await new Promise((resolve) => {
    let open = sockets.length;
    const closed = () => {
      if (--open === 0) resolve();
    };
    for (const ws of sockets) {
      let nextSeq = 0; // sequence number of the next message to send
      let expect = 0; // sequence number the next echo must carry
      const sentAt = []; // FIFO of send times, one per message in flight
      let head = 0;
      const payload = Buffer.alloc(size, 'x');
      const send = () => {
        payload.writeUInt32BE(nextSeq++ >>> 0, 0);
        sentAt.push(process.hrtime.bigint());
        ws.send(payload);
      };
      ws.on('message', (data) => {
        const now = process.hrtime.bigint();
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        if (buf.length !== size || buf.readUInt32BE(0) !== expect >>> 0) orderErrors++;
        expect++;
        const t0 = sentAt[head];
        sentAt[head++] = undefined;
        if (head > 4096) {
          sentAt.splice(0, head);
          head = 0;
        }
        if (t0 !== undefined) hist.record(Number(now - t0) / 1000);
        total++;
        if (!stopping) {
          inWindow++;
          send();
        } else if (expect === nextSeq) ws.close(1000);
      });
      ws.on('error', () => {
        errors++;
      });
      ws.on('close', closed);
      for (let i = 0; i < depth; i++) send();
    }
    setTimeout(() => {
      // Every connection has `depth` messages in flight: each closes when its last echo is back.
      stopping = true;
      // Anything still waiting after 2 s is cut off.
      setTimeout(() => sockets.forEach((s) => s.terminate()), 2000).unref();
    }, opts.duration * 1000);
  });
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    supported: true,
    responses: total,
    inWindow,
    durationS: opts.duration,
    wallS,
    rps: inWindow / opts.duration,
    errors,
    orderErrors,
    latency: hist.summary(),
  };
}

serveLoad(run);
