// Event-loop stall probe, from outside the proxy: small GETs back to back on one keep-alive
// connection (to a cheap endpoint such as the admin /livez), recording the gap between one
// response's end and the next one's. While the proxy's event loop is blocked, the request in
// flight waits, so the largest gap is the longest stall. Same parent protocol as
// load-worker.js (see worker-protocol.js).
//
// opts: { url, duration (s), maxRequests (default 2,000,000), thresholdMs (default 2) }
// Result: { requests, errors, startMs, endMs, maxGapMs, gaps: [[atMs, gapMs], ...] }: every
// gap over thresholdMs (at most 20,000), atMs being when it ended, as performance.timeOrigin +
// performance.now() (a clock the parent can compare with its own).
import http from 'node:http';
import { performance } from 'node:perf_hooks';
import { serveLoad } from './worker-protocol.js';

const now = () => performance.timeOrigin + performance.now();

function get(agent, url) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('probe timed out after 5 s')));
    req.on('error', reject);
  });
}

async function run(opts) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const maxRequests = opts.maxRequests ?? 2_000_000;
  const threshold = opts.thresholdMs ?? 2;
  const startMs = now();
  const end = startMs + opts.duration * 1000;
  const gaps = [];
  let requests = 0;
  let errors = 0;
  let maxGapMs = 0;
  let last = startMs;
  while (requests < maxRequests) {
    const t = now();
    if (t >= end) break;
    try {
      const status = await get(agent, opts.url);
      if (status !== 200) errors++;
    } catch {
      errors++;
    }
    requests++;
    const done = now();
    const gap = done - last;
    last = done;
    if (gap > maxGapMs) maxGapMs = gap;
    if (gap > threshold && gaps.length < 20_000) gaps.push([done, gap]);
  }
  agent.destroy();
  return { requests, errors, startMs, endMs: now(), maxGapMs, gaps };
}

serveLoad(run);
