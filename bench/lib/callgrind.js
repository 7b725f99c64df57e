// One proxy under valgrind's callgrind for bench/callgrind-ab.js and callgrind-window.js:
// the bench's policy config (or the dispatch-min reference), ready once /readyz (or the
// reference's own port) answers, then keep-alive GETs one at a time, then SIGTERM so
// callgrind writes its files. The two scripts differ only in what they count.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { outriggerConfig } from './outrigger.js';
import { freePort } from './proc.js';

/** The 128-byte upstream every count is taken against; close() it when done. */
export async function startCountUpstream() {
  const body = Buffer.alloc(128, 'x');
  const server = http.createServer((_q, res) => res.end(body));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

const REF_SCRIPTS = { 'dispatch-ref': 'bench/lib/ref-dispatch.js', 'floor-ref': 'bench/lib/ref-floor.js' };

/**
 * Starts `main` (a dist/main.js path, 'dispatch-ref' or 'floor-ref') under callgrind with `flags`
 * before the out-file option; accessLog turns the access log on (to stdout, /dev/null here). Returns { pid, dir, request(), stop() }: dir holds cg.out*.
 */
export async function startUnderCallgrind(main, upstreamUrl, flags = [], { accessLog = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-cg-'));
  const [port, adminPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(join(dir, 'c.yaml'), outriggerConfig({ port, adminPort, metricsPort, upstreamUrl, accessLog }));
  const ref = REF_SCRIPTS[main] !== undefined;
  const args = ref ? [resolve(REF_SCRIPTS[main]), '--port', String(port), '--target', upstreamUrl] : [main, '--config', join(dir, 'c.yaml')];
  const readyUrl = ref ? `http://127.0.0.1:${port}/` : `http://127.0.0.1:${adminPort}/readyz`;
  const child = spawn('valgrind', ['--tool=callgrind', ...flags, `--callgrind-out-file=${join(dir, 'cg.out')}`, '--smc-check=all-non-file', process.execPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, OUTRIGGER_LOG_LEVEL: accessLog ? 'info' : 'warn' } });
  let err = '';
  child.stderr.on('data', (c) => (err += c));
  const deadline = Date.now() + 180_000;
  for (;;) {
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`not ready:\n${err}`);
    }
    const ok = await new Promise((r) => http.get(readyUrl, (res) => (res.resume(), r(res.statusCode === 200 || (ref && res.statusCode === 503)))).on('error', () => r(false)));
    if (ok) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  return {
    pid: child.pid,
    dir,
    /** POST to the admin API (Outrigger only), e.g. '/breakers/bench/isolate'. */
    admin: (path) =>
      new Promise((r, j) => {
        const q = http.request({ host: '127.0.0.1', port: adminPort, path, method: 'POST' }, (res) => (res.resume(), res.on('end', () => (res.statusCode === 200 ? r() : j(new Error(`POST ${path}: ${res.statusCode}`))))));
        q.on('error', j).end();
      }),
    request: () => new Promise((r, j) => http.get({ host: '127.0.0.1', port, path: '/x', agent }, (res) => (res.resume(), res.on('end', r))).on('error', j)),
    async stop() {
      agent.destroy();
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** The `summary:` instruction count of each callgrind output file in `dir` whose name passes `keep`. */
export function summaries(dir, keep) {
  const out = [];
  for (const f of readdirSync(dir).filter(keep)) {
    const m = /^summary:\s+(\d+)/m.exec(readFileSync(join(dir, f), 'utf8'));
    out.push({ file: f, instructions: m ? Number(m[1]) : 0 });
  }
  return out;
}
