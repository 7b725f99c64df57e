// Instructions per proxied request over a window of requests, without start-up and exit:
// like callgrind-ab.js (same config, same request shape), but the counters are zeroed after
// W warm-up requests (callgrind_control) and dumped after N more, so the start-up work that
// differs from one process to the next (GC, JIT timing) stays out of the figure. Threads are
// counted apart: `main` is the JS thread, `other` mostly V8's background compilers.
//   node bench/callgrind-window.js [dist/main.js | dispatch-ref | floor-ref] ...
// CG_W (default 500) and CG_N (default 1500) set the window: the default is callgrind-ab's
// N1..N2. With CG_W of a few thousand it shows the cost once the JIT has settled.
// CG_FAIL_FAST=1 isolates the route's breaker first, so every request is a fail-fast
// rejection answered by the breaker-open fallback (the fail-fast scenario's path).
// CG_ACCESS_LOG=1 turns the access log on (a line per request, to /dev/null).
import { execFileSync } from 'node:child_process';
import { resolve } from 'node:path';
import { startCountUpstream, startUnderCallgrind, summaries } from './lib/callgrind.js';

const W = Number(process.env.CG_W ?? 500);
const N = Number(process.env.CG_N ?? 1500);
const FAIL_FAST = process.env.CG_FAIL_FAST === '1';
const ACCESS_LOG = process.env.CG_ACCESS_LOG === '1';
const upstream = await startCountUpstream();

async function window(main) {
  const p = await startUnderCallgrind(main, upstream.url, ['--separate-threads=yes'], { accessLog: ACCESS_LOG });
  if (FAIL_FAST && !main.endsWith('-ref')) await p.admin('/breakers/bench/isolate');
  for (let i = 0; i < W; i++) await p.request();
  execFileSync('callgrind_control', ['--zero', String(p.pid)], { stdio: 'ignore' });
  for (let i = 0; i < N; i++) await p.request();
  execFileSync('callgrind_control', ['--dump', String(p.pid)], { stdio: 'ignore' });
  await p.stop();
  // The dump is cg.out.1-<thread>; thread 01 is the main thread.
  let mainThread = 0;
  let all = 0;
  for (const { file, instructions } of summaries(p.dir, (f) => f.startsWith('cg.out.1-'))) {
    all += instructions;
    if (file.endsWith('-01')) mainThread = instructions;
  }
  return { main: Math.round(mainThread / N), other: Math.round((all - mainThread) / N), total: Math.round(all / N) };
}

const builds = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['dist/main.js'];
for (const b of builds) {
  const per = await window(b.endsWith('-ref') ? b : resolve(b));
  console.log(JSON.stringify({ build: b, from: W, requests: N, failFast: FAIL_FAST && !b.endsWith('-ref'), accessLog: ACCESS_LOG && !b.endsWith('-ref'), instructionsPerRequest: per }));
}
upstream.close();
