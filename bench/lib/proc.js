// Process helpers: spawn and track children, CPU and RSS from /proc, free ports, readiness polling.
import { spawn, spawnSync, execFileSync } from 'node:child_process';
import { readFileSync, openSync, closeSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os, { tmpdir } from 'node:os';
import { join } from 'node:path';
import http from 'node:http';

let clkTck = null;
/** Clock ticks per second for /proc/<pid>/stat (getconf CLK_TCK, usually 100). */
export function clockTicks() {
  if (clkTck === null) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clkTck = 100;
    }
  }
  return clkTck;
}

/** CPU seconds (user + system, all threads) used so far by pid, or null if unreadable. */
export function cpuSeconds(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The comm field may contain spaces; fields after the closing paren start at field 3 (state).
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(rest[11]); // field 14
    const stime = Number(rest[12]); // field 15
    return (utime + stime) / clockTicks();
  } catch {
    return null;
  }
}

/** Resident set size of pid in MB (VmRSS), or null. */
export function rssMB(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

/** A free TCP port on 127.0.0.1 (bind to 0, read, close). */
// Ports already handed out by this process. The kernel may give a just-closed ephemeral
// port out again, so three calls in a row can return the same port twice.
const handedOut = new Set();

export async function freePort() {
  for (let tries = 0; tries < 50; tries++) {
    const port = await new Promise((resolve, reject) => {
      const srv = createServer();
      srv.unref();
      srv.on('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const { port } = srv.address();
        srv.close(() => resolve(port));
      });
    });
    if (!handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('no fresh loopback port after 50 tries');
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tmpDirs = new Set();
export function makeTmpDir(prefix = 'outrigger-bench-') {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tmpDirs.add(dir);
  return dir;
}

const children = new Set();

/**
 * Spawn a long-running child. stdout/stderr go to files when given (so a chatty
 * child never blocks on a full pipe). Returns { child, pid, stop(), exited }.
 */
export function startProcess(cmd, args, { cwd, env, stdoutFile, stderrFile, ipc = false } = {}) {
  const outFd = stdoutFile ? openSync(stdoutFile, 'a') : 'ignore';
  const errFd = stderrFile ? openSync(stderrFile, 'a') : 'ignore';
  const stdio = ['ignore', outFd, errFd];
  if (ipc) stdio.push('ipc');
  const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio });
  if (typeof outFd === 'number') closeSync(outFd);
  if (typeof errFd === 'number') closeSync(errFd);
  children.add(child);
  let exitInfo = null;
  const exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      children.delete(child);
      resolve(exitInfo);
    });
    child.on('error', (err) => {
      exitInfo = { code: null, signal: null, error: err };
      children.delete(child);
      resolve(exitInfo);
    });
  });
  return {
    child,
    pid: child.pid,
    exited,
    get exitInfo() {
      return exitInfo;
    },
    async stop(timeoutMs = 3000) {
      if (exitInfo) return exitInfo;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
      const info = await exited;
      clearTimeout(t);
      return info;
    },
  };
}

/** Register a child started elsewhere (e.g. fork) so it is killed on exit. */
export function track(child) {
  children.add(child);
  child.on('exit', () => children.delete(child));
}

function killAll() {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
  children.clear();
  for (const d of tmpDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* ignore */
    }
  }
  tmpDirs.clear();
}

let cleanupInstalled = false;
export function installCleanup() {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  process.on('exit', killAll);
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
    process.on(sig, () => {
      // Kill the children and give them a moment to be reaped, then leave.
      const waits = [...children].map((c) => new Promise((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', r))));
      for (const c of children) {
        try {
          c.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
      Promise.race([Promise.all(waits), sleep(1000)]).then(() => {
        killAll();
        process.exit(130);
      });
    });
  }
}
export { killAll };

/** One HTTP request on loopback; resolves { status, body, headers }. */
export function httpRequest(url, { method = 'GET', headers = {}, body, timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, agent: false, timeout: timeoutMs }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Poll url until it answers with `status` (default 200). Fails early if the
 * process handle `proc` exits, and after timeoutMs.
 */
export async function waitForHttp(url, { status = 200, timeoutMs = 15000, proc, what = url } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (proc && proc.exitInfo) {
      throw new Error(`${what} exited before it was ready (code ${proc.exitInfo.code}, signal ${proc.exitInfo.signal})`);
    }
    try {
      const r = await httpRequest(url, { timeoutMs: 1000 });
      if (r.status === status) return r;
      last = `status ${r.status}`;
    } catch (err) {
      last = err.code || err.message;
    }
    await sleep(100);
  }
  throw new Error(`${what} not ready within ${timeoutMs} ms (${last})`);
}

/** Wait for a TCP port to accept connections. */
export async function waitForPort(port, { timeoutMs = 10000, proc, what = `port ${port}` } = {}) {
  const { connect } = await import('node:net');
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc && proc.exitInfo) throw new Error(`${what} exited before it was ready (code ${proc.exitInfo.code})`);
    const ok = await new Promise((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`${what} did not open within ${timeoutMs} ms`);
}

export function tail(file, lines = 20) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

/**
 * CPU affinity for a process and all its threads (`taskset -a -p -c LIST PID`), so a
 * proxy can be measured with the load generator on another core. Returns false when
 * taskset is missing or refuses; callers then report the pinned run as not available.
 */
export function pinCpus(pid, list) {
  const r = spawnSync('taskset', ['-a', '-p', '-c', list, String(pid)], { stdio: 'ignore', timeout: 5000 });
  return r.status === 0;
}

/** Whether pinning is possible here: taskset runs and there are at least two CPUs. */
export function canPin() {
  return os.cpus().length >= 2 && spawnSync('taskset', ['-p', String(process.pid)], { stdio: 'ignore', timeout: 5000 }).status === 0;
}

