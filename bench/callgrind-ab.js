// Instructions per proxied request, counted by valgrind's callgrind (deterministic, so a
// small difference between two builds shows through the machine's noise): the proxy's
// total user-space instructions for N1 and for N2 keep-alive requests through the bench's
// policy config, the difference divided by N2 - N1.
//   node bench/callgrind-ab.js [dist/main.js of build A] [dist/main.js of build B] ... [dispatch-ref]
// `dispatch-ref` counts the dispatch-min reference forwarder (lib/ref-dispatch.js) instead.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { outriggerConfig } from './lib/outrigger.js';
import { freePort } from './lib/proc.js';

const N1 = Number(process.env.CG_N1 ?? 500);
const N2 = Number(process.env.CG_N2 ?? 2000);
const body = Buffer.alloc(128, 'x');
const upstream = http.createServer((_q, res) => res.end(body));
await new Promise((r) => upstream.listen(0, '127.0.0.1', r));
const upstreamUrl = `http://127.0.0.1:${upstream.address().port}`;

async function instructions(main, n) {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-cg-'));
  const [port, adminPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'c.yaml'), outriggerConfig({ port, adminPort, metricsPort, upstreamUrl }));
  const ref = main === 'dispatch-ref';
  const args = ref ? [resolve('bench/lib/ref-dispatch.js'), '--port', String(port), '--target', upstreamUrl] : [main, '--config', join(dir, 'c.yaml')];
  const readyUrl = ref ? `http://127.0.0.1:${port}/` : `http://127.0.0.1:${adminPort}/readyz`;
  const child = spawn('valgrind', ['--tool=callgrind', `--callgrind-out-file=${join(dir, 'cg.out')}`, '--smc-check=all-non-file', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OUTRIGGER_LOG_LEVEL: 'warn' } });
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
  for (let i = 0; i < n; i++) {
    await new Promise((r, j) => http.get({ host: '127.0.0.1', port, path: '/x', agent }, (res) => (res.resume(), res.on('end', r))).on('error', j));
  }
  agent.destroy();
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  const out = readdirSync(dir).filter((f) => f.startsWith('cg.out'));
  let total = 0;
  for (const f of out) {
    const m = /^summary:\s+(\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    if (m) total += Number(m[1]);
  }
  return total;
}

const builds = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['dist/main.js'];
for (const b of builds) {
  const main = b === 'dispatch-ref' ? b : resolve(b);
  const a = await instructions(main, N1);
  const c = await instructions(main, N2);
  console.log(JSON.stringify({ build: b, n1: N1, n2: N2, instructionsPerRequest: Math.round((c - a) / (N2 - N1)) }));
}
upstream.close();
