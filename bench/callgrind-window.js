// Instructions per proxied request over a window of requests, without start-up and exit:
// like callgrind-ab.js (same config, same request shape), but the counters are zeroed after
// W warm-up requests (callgrind_control) and dumped after N more, so the start-up work that
// differs from one process to the next (GC, JIT timing) stays out of the figure. Threads are
// counted apart: `main` is the JS thread, `other` mostly V8's background compilers.
//   node bench/callgrind-window.js [dist/main.js | dispatch-ref] ...
// CG_W (default 500) and CG_N (default 1500) set the window: the default is callgrind-ab's
// N1..N2. With CG_W of a few thousand it shows the cost once the JIT has settled.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { outriggerConfig } from './lib/outrigger.js';
import { freePort } from './lib/proc.js';

const W = Number(process.env.CG_W ?? 500);
const N = Number(process.env.CG_N ?? 1500);
const body = Buffer.alloc(128, 'x');
const upstream = http.createServer((_q, res) => res.end(body));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;

async function window(main) {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-cgw-'));
  const [port, adminPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'c.yaml'), outriggerConfig({ port, adminPort, metricsPort, upstreamUrl }));
  const ref = main === 'dispatch-ref';
  const args = ref ? [resolve('bench/lib/ref-dispatch.js'), '--port', String(port), '--target', upstreamUrl] : [main, '--config', join(dir, 'c.yaml')];
  const readyUrl = ref ? `http://127.0.0.1:${port}/` : `http://127.0.0.1:${adminPort}/readyz`;
  const child = spawn('valgrind', ['--tool=callgrind', '--separate-threads=yes', `--callgrind-out-file=${join(dir, 'cg.out')}`, '--smc-check=all-non-file', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OUTRIGGER_LOG_LEVEL: 'warn' } });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`not ready:\n${err}`);
    const ok = await new Promise((r) => http.get(readyUrl, (res) => (res.resume(), r(res.statusCode === 200))).on('error', () => r(false)));
    if (ok) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const one = () => new Promise((r, j) => http.get({ host: '127.0.0.1', port, path: '/x', agent }, (res) => (res.resume(), res.on('end', r))).on('error', j));
  for (let i = 0; i < W; i++) await one();
  execFileSync('callgrind_control', ['--zero', String(child.pid)], { stdio: 'ignore' });
  for (let i = 0; i < N; i++) await one();
  execFileSync('callgrind_control', ['--dump', String(child.pid)], { stdio: 'ignore' });
  agent.destroy();
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  // The dump is cg.out.1-<thread>; thread 01 is the main thread.
  let mainThread = 0;
  let all = 0;
  for (const f of readdirSync(dir).filter((name) => name.startsWith('cg.out.1-'))) {
    const m = /^summary:\s+(\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    const n = m ? Number(m[1]) : 0;
    all += n;
    if (f.endsWith('-01')) mainThread = n;
  }
  return { main: Math.round(mainThread / N), other: Math.round((all - mainThread) / N), total: Math.round(all / N) };
}

const builds = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['dist/main.js'];
for (const b of builds) {
  const per = await window(b === 'dispatch-ref' ? b : resolve(b));
  console.log(JSON.stringify({ build: b, from: W, requests: N, instructionsPerRequest: per }));
}
upstream.close();
