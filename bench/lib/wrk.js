// wrk (Debian's package, a C load generator) as a second load generator, for the scenarios
// where autocannon itself is the limit: it costs a fraction of autocannon's CPU per request.
// Bounded: wrk stops after `duration` seconds, and is killed 30 s after that.
import { spawn, spawnSync } from 'node:child_process';
import { cpuSeconds, pinCpus, track } from './proc.js';
import { runLoad } from './load.js';

/** Whether wrk is installed. */
export function haveWrk() {
  return spawnSync('wrk', ['--version'], { stdio: 'ignore', timeout: 5000 }).error === undefined;
}

const UNIT_US = { us: 1, ms: 1000, s: 1e6 };

/** wrk's text report: requests, non-2xx/3xx count, socket errors, and the --latency percentiles in µs. */
export function parseWrk(text) {
  const num = (re) => {
    const m = re.exec(text);
    return m ? Number(m[1]) : null;
  };
  const pct = (p) => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s)\\s*$`, 'm').exec(text);
    return m ? Number(m[1]) * UNIT_US[m[2]] : null;
  };
  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  return {
    responses: num(/(\d+) requests in [\d.]+\w+/),
    non2xx3xx: num(/Non-2xx or 3xx responses: (\d+)/) ?? 0,
    errors: se ? Number(se[1]) + Number(se[2]) + Number(se[3]) : 0,
    timeouts: se ? Number(se[4]) : 0,
    latency: { p50Us: pct(50), p99Us: pct(99) },
  };
}

/**
 * One wrk run: opts { url, connections, duration (s), threads (1), watch: { name: pid },
 * cpus (a taskset list for wrk) }. Returns { rps, responses, non2xx3xx, errors, timeouts,
 * latency, cpu: { name: { seconds, usPerResponse } }, generatorCores }.
 */
export function runWrk({ url, connections, duration, threads = 1, watch = {}, cpus }) {
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t', String(threads), '-c', String(connections), '-d', `${duration}s`, '--latency', url], { stdio: ['ignore', 'pipe', 'pipe'] });
    track(child);
    if (cpus !== undefined && !pinCpus(child.pid, cpus)) {
      child.kill('SIGKILL');
      reject(new Error(`could not pin wrk to CPU ${cpus}`));
      return;
    }
    const t0 = process.hrtime.bigint();
    const before = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, cpuSeconds(pid)]));
    let out = '';
    let err = '';
    let genLast = null;
    // wrk's own CPU is read while it runs (after exit /proc has nothing): the last sample
    // before it ends, every 100 ms, so at most ~100 ms of its time is missed.
    const genTimer = setInterval(() => {
      const s = cpuSeconds(child.pid);
      if (s !== null) genLast = { s, at: process.hrtime.bigint() };
    }, 100);
    const killer = setTimeout(() => child.kill('SIGKILL'), (duration + 30) * 1000);
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (err += c));
    child.on('error', (e) => {
      clearInterval(genTimer);
      clearTimeout(killer);
      reject(e);
    });
    child.on('exit', (code) => {
      clearInterval(genTimer);
      clearTimeout(killer);
      const after = Object.fromEntries(Object.entries(watch).map(([k, pid]) => [k, cpuSeconds(pid)]));
      if (code !== 0) {
        reject(new Error(`wrk exited with code ${code}: ${err.trim() || out.trim()}`));
        return;
      }
      const r = parseWrk(out);
      if (r.responses === null) {
        reject(new Error(`could not read wrk's report:\n${out}`));
        return;
      }
      const cpu = {};
      for (const k of Object.keys(watch)) {
        const s = before[k] === null || after[k] === null ? null : after[k] - before[k];
        cpu[k] = { seconds: s, usPerResponse: s === null || !r.responses ? null : (s * 1e6) / r.responses };
      }
      const generatorCores = genLast === null ? null : genLast.s / (Number(genLast.at - t0) / 1e9);
      resolve({ ...r, rps: r.responses / duration, cpu, generatorCores });
    });
  });
}

/**
 * One closed-loop run with `generator` ('wrk' or 'autocannon') on runWrk's / runLoad's opts,
 * with statusCodes always set. wrk counts only the answers outside 2xx/3xx: they are
 * `non2xxAs` when every such answer is known to have that status (a fallback's 503), else
 * "other" beside "2xx/3xx".
 */
export async function runGenerator(generator, opts, { non2xxAs } = {}) {
  const r = generator === 'wrk' ? await runWrk(opts) : await runLoad(opts);
  const statusCodes = r.statusCodes ?? (non2xxAs !== undefined ? { [non2xxAs]: r.non2xx3xx } : { '2xx/3xx': r.responses - r.non2xx3xx, other: r.non2xx3xx });
  return { ...r, statusCodes };
}
