// Load generator child: runs autocannon's programmatic API in its own process,
// so the load generator's CPU is never counted against a proxy. Talks to the
// parent over IPC: sends {type:'ready'}, waits for {type:'go', opts}, sends
// {type:'result', result}, exits.
//
// opts: { url, connections, duration (s), overallRate?, stagger?, timeout (s) }
// With overallRate and stagger = K, K autocannon instances (connections/K each,
// rate overallRate/K each) start 1000/K ms apart. autocannon's rate limiter
// sends each connection's per-second quota back to back at the start of each
// second; staggering spreads those bursts across the second.
import autocannon from 'autocannon';
import { Histogram } from './histogram.js';
import { serveLoad } from './worker-protocol.js';

function runOne(opts, hist, codes) {
  return new Promise((resolve, reject) => {
    const inst = autocannon(
      {
        url: opts.url,
        connections: opts.connections,
        duration: opts.duration,
        pipelining: 1,
        timeout: opts.timeout ?? 10,
        overallRate: opts.overallRate || undefined,
        headers: opts.headers || {},
        method: opts.method || 'GET',
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    inst.on('response', (_client, statusCode, _bytes, responseTimeMs) => {
      hist.record(responseTimeMs * 1000);
      codes[statusCode] = (codes[statusCode] || 0) + 1;
    });
  });
}

async function run(opts) {
  const hist = new Histogram();
  const codes = {};
  const started = process.hrtime.bigint();
  let results;
  if (opts.overallRate && opts.stagger > 1) {
    const k = opts.stagger;
    const per = Math.max(1, Math.floor(opts.connections / k));
    results = await Promise.all(
      Array.from({ length: k }, (_, i) =>
        new Promise((r) => setTimeout(r, Math.round((i * 1000) / k))).then(() =>
          runOne({ ...opts, connections: per, overallRate: Math.round(opts.overallRate / k) }, hist, codes),
        ),
      ),
    );
  } else {
    results = [await runOne(opts, hist, codes)];
  }
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  const sum = (f) => results.reduce((a, r) => a + (f(r) || 0), 0);
  const responses = hist.n;
  return {
    responses,
    durationS: opts.duration,
    wallS,
    rps: responses / opts.duration,
    statusCodes: codes,
    non2xx: sum((r) => r.non2xx),
    errors: sum((r) => r.errors),
    timeouts: sum((r) => r.timeouts),
    latency: hist.summary(),
    autocannon: results.map((r) => ({
      requestsAverage: r.requests.average,
      requestsTotal: r.requests.total,
      latencyMs: { p50: r.latency.p50, p99: r.latency.p99, p999: r.latency.p99_9, max: r.latency.max },
      non2xx: r.non2xx,
      errors: r.errors,
      timeouts: r.timeouts,
      resets: r.resets,
    })),
  };
}

serveLoad(run);
