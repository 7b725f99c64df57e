// WebSocket load generator child (same IPC protocol as load-worker.js):
// `connections` clients each send a message, wait for its echo, and send the
// next (closed loop) for `duration` seconds. Reports messages/s and round-trip
// percentiles. If the upgrade fails, reports { supported: false, reason }.
import WebSocket from 'ws';
import { Histogram } from './histogram.js';
import { serveLoad } from './worker-protocol.js';

function connect(url, timeoutMs) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: timeoutMs });
    const fail = (reason) => {
      ws.removeAllListeners();
      ws.on('error', () => {});
      try {
        ws.terminate();
      } catch {
        /* ignore */
      }
      reject(new Error(reason));
    };
    ws.once('open', () => {
      ws.removeAllListeners('unexpected-response');
      resolve(ws);
    });
    ws.once('unexpected-response', (_req, res) => fail(`upgrade refused: HTTP ${res.statusCode}${res.headers['x-outrigger-error'] ? ` ${res.headers['x-outrigger-error']}` : ''}`));
    ws.once('error', (err) => fail(`upgrade failed: ${err.message}`));
  });
}

async function run(opts) {
  const payload = Buffer.alloc(opts.messageSize || 64, 'x');
  let sockets;
  try {
    sockets = [];
    for (let i = 0; i < opts.connections; i++) sockets.push(await connect(opts.url, 5000));
  } catch (err) {
    for (const s of sockets || []) s.terminate();
    return { supported: false, reason: err.message, responses: 0 };
  }
  const hist = new Histogram();
  let errors = 0;
  let stopping = false;
  const started = process.hrtime.bigint();
  await new Promise((resolve) => {
    let open = sockets.length;
    const done = () => {
      if (--open === 0) resolve();
    };
    for (const ws of sockets) {
      let sentAt = 0n;
      const send = () => {
        sentAt = process.hrtime.bigint();
        ws.send(payload);
      };
      ws.on('message', () => {
        hist.record(Number(process.hrtime.bigint() - sentAt) / 1000);
        if (stopping) {
          ws.close();
          return;
        }
        send();
      });
      ws.on('error', () => {
        errors++;
      });
      ws.on('close', done);
      send();
    }
    setTimeout(() => {
      stopping = true;
      // Anything still waiting after 2 s is cut off.
      setTimeout(() => sockets.forEach((s) => s.terminate()), 2000).unref();
    }, opts.duration * 1000);
  });
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  return {
    supported: true,
    responses: hist.n,
    durationS: opts.duration,
    wallS,
    rps: hist.n / opts.duration,
    errors,
    latency: hist.summary(),
  };
}

serveLoad(run);
