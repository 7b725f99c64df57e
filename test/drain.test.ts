// Graceful drain and signals, against the real CLI (`node dist/main.js`, built by
// `npm run build`) and real loopback upstreams: SIGTERM with requests and WebSockets in
// flight, the second signal, drain.timeout, and SIGHUP.
import { writeFileSync } from 'node:fs';
import { request as httpRequest, Agent, type IncomingHttpHeaders } from 'node:http';
import { connect } from 'node:net';
import { stringify } from 'yaml';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { hang, ok, slowBody, startUpstream, type Behaviour, type TestUpstream } from './helpers/upstream.js';
import { startWsUpstream } from './helpers/ws-upstream.js';
import { req } from './helpers/http.js';
import { sleep, waitFor } from './helpers/wait.js';
import { requireMain, startCli as spawnCli, type Cli } from './helpers/cli.js';


const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
});

beforeAll(requireMain);

/** Spawns the CLI on a config with ephemeral ports and waits for its "listening" line. */
const startCli = (cfg: Record<string, unknown>, behindSymlink = false): Promise<Cli> => spawnCli(cfg, cleanups, behindSymlink);

async function upstream(behave: Behaviour): Promise<TestUpstream> {
  const up = await startUpstream(behave);
  cleanups.push(() => up.close());
  return up;
}

interface Streamed {
  status: number;
  headers: IncomingHttpHeaders;
  /** Resolves with the body and whether it ended cleanly; never rejects. */
  done: Promise<{ body: string; complete: boolean; endedAt: number }>;
  chunks: string[];
}

/** Starts a GET and resolves once its response headers are in; the body keeps streaming. */
function stream(port: number, path: string, agent: Agent | false = false): Promise<Streamed> {
  return new Promise((resolve, reject) => {
    const r = httpRequest({ host: '127.0.0.1', port, path, agent }, (res) => {
      const chunks: string[] = [];
      res.setEncoding('utf8');
      res.on('data', (c: string) => chunks.push(c));
      const done = new Promise<{ body: string; complete: boolean; endedAt: number }>((ok) => {
        const finish = () => ok({ body: chunks.join(''), complete: res.complete, endedAt: Date.now() });
        res.once('end', finish);
        res.once('error', finish);
        res.once('aborted', finish);
        res.once('close', finish);
      });
      resolve({ status: res.statusCode ?? 0, headers: res.headers, done, chunks });
    });
    r.on('error', reject);
    r.end();
  });
}

async function readyz(adminUrl: string): Promise<number> {
  try {
    return (await fetch(`${adminUrl}/readyz`)).status;
  } catch {
    return 0;
  }
}

/** True once nothing accepts connections on the port any more. */
function refuses(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => resolve(true));
  });
}

function openWs(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const fullBody = (n: number) => Array.from({ length: n }, (_, i) => `chunk${i}\n`).join('');

describe('graceful drain (the CLI)', () => {
  it('on SIGTERM: readiness off first, every started request completes, WebSockets get 1001, exit 0', async () => {
    // Each slow response takes ~2.4s, so the drain has to wait for them.
    const slow = await upstream(slowBody(16, 150));
    const fast = await upstream(ok('fast'));
    const wsUp = await startWsUpstream();
    cleanups.push(() => wsUp.close());
    const cli = await startCli({
      drain: { delay: '300ms', timeout: '5s' },
      upstreams: { slow: { endpoints: [slow.url] }, fast: { endpoints: [fast.url] }, ws: { endpoints: [wsUp.url] } },
      routes: [
        { name: 'slow', match: { pathPrefix: '/slow' }, upstream: 'slow', retry: { attempts: 0 } },
        { name: 'ws', match: { pathPrefix: '/ws' }, upstream: 'ws' },
        { name: 'fast', match: { pathPrefix: '/' }, upstream: 'fast' },
      ],
    });
    expect(await readyz(cli.adminUrl)).toBe(200);

    const ws = await openWs(`ws://127.0.0.1:${cli.port}/ws`);
    cleanups.push(() => ws.terminate());
    const wsClosed = new Promise<{ code: number; at: number }>((resolve) => ws.once('close', (code) => resolve({ code, at: Date.now() })));

    const inflight = await Promise.all([1, 2, 3, 4].map((i) => stream(cli.port, `/slow/${i}`)));
    await waitFor(() => inflight.every((s) => s.chunks.length > 0), { timeout: 10_000, what: 'the slow responses to start' });

    cli.child.kill('SIGTERM');
    // Readiness goes first, while the in-flight responses are still streaming.
    await waitFor(async () => (await readyz(cli.adminUrl)) === 503, { timeout: 5000, interval: 5, what: '/readyz to turn 503' });
    const flippedAt = Date.now();
    expect(cli.exitCode()).toBeUndefined();

    // The WebSocket still relays during the drain.
    const echoed = new Promise<string>((resolve) => ws.once('message', (d: Buffer) => resolve(d.toString())));
    ws.send('during drain');
    expect(await echoed).toBe('during drain');

    const results = await Promise.all(inflight.map((s) => s.done));
    for (const r of results) {
      expect(r.complete).toBe(true);
      expect(r.body).toBe(fullBody(16));
    }
    for (const s of inflight) expect(s.status).toBe(200);
    expect(Math.min(...results.map((r) => r.endedAt))).toBeGreaterThanOrEqual(flippedAt);

    const closed = await wsClosed;
    expect(closed.code).toBe(1001);
    // WebSockets are closed after the in-flight requests are done, not before.
    expect(closed.at).toBeGreaterThanOrEqual(Math.max(...results.map((r) => r.endedAt)) - 50);
    expect(await cli.exited).toBe(0);

    const msgs = cli.logs.map((l) => l.msg);
    expect(msgs).toContain('draining: readiness is off');
    expect(msgs).toContain('drained');
    expect(msgs.indexOf('draining: readiness is off')).toBeLessThan(msgs.indexOf('drained'));
    expect(msgs).not.toContain('drain timeout: cutting in-flight requests');
  });

  it('serves with connection: close during drain.delay, then stops accepting', async () => {
    // The response headers of /late come 600ms after the request: before the signal
    // it started, during the drain it is answered.
    const up = await upstream((reqIn, res, n, body) => {
      if (reqIn.url === '/late') setTimeout(() => ok('late')(reqIn, res, n, body), 600);
      else ok('ok')(reqIn, res, n, body);
    });
    const cli = await startCli({
      // Longer than the suggested 300ms: the checks below must fit inside the delay.
      drain: { delay: '2500ms', timeout: '5s' },
      upstreams: { up: { endpoints: [up.url] } },
      routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', retry: { attempts: 0 } }],
    });
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => agent.destroy());
    // Keep-alive agents throughout: a client that asks for connection: close gets it anyway.
    // A keep-alive connection, idle when the signal comes.
    const first = await stream(cli.port, '/', agent);
    expect((await first.done).body).toBe('ok');
    expect(first.headers.connection).toBe('keep-alive');

    const lateAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => lateAgent.destroy());
    const late = stream(cli.port, '/late', lateAgent);
    await waitFor(() => up.seen.some((r) => r.url === '/late'), { timeout: 5000, what: 'the /late request upstream' });

    cli.child.kill('SIGTERM');
    await waitFor(async () => (await readyz(cli.adminUrl)) === 503, { timeout: 5000, interval: 5, what: '/readyz to turn 503' });

    // Still served during the delay, on a new connection and on the idle keep-alive one,
    // but told to close.
    const freshAgent = new Agent({ keepAlive: true, maxSockets: 1 });
    cleanups.push(() => freshAgent.destroy());
    const fresh = await stream(cli.port, '/', freshAgent);
    expect(fresh.status).toBe(200);
    expect(fresh.headers.connection).toBe('close');
    expect((await fresh.done).body).toBe('ok');
    const reused = await stream(cli.port, '/', agent);
    expect(reused.status).toBe(200);
    expect(reused.headers.connection).toBe('close');
    expect((await reused.done).body).toBe('ok');

    // Started before the drain, answered during it: connection: close as well.
    const lateRes = await late;
    expect(lateRes.status).toBe(200);
    expect((await lateRes.done).body).toBe('late');
    expect(lateRes.headers.connection).toBe('close');

    // After the delay the listener is closed: new connections are refused.
    await waitFor(() => refuses(cli.port), { timeout: 10_000, interval: 20, what: 'the proxy to stop accepting' });
    expect(await cli.exited).toBe(0);
  });

  it('exits at once, non-zero, on a second signal', async () => {
    const up = await upstream(hang);
    const cli = await startCli({
      drain: { delay: '300ms', timeout: '30s' },
      upstreams: { up: { endpoints: [up.url] } },
      routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', timeout: '60s', retry: { attempts: 0 } }],
    });
    // A request that never ends keeps the drain waiting for its 30s timeout.
    const pending = req(cli.url).catch((err: unknown) => err);
    await waitFor(() => up.seen.length === 1, { timeout: 5000, what: 'the request upstream' });
    cli.child.kill('SIGINT');
    await waitFor(async () => (await readyz(cli.adminUrl)) === 503, { timeout: 5000, interval: 5, what: '/readyz to turn 503' });
    const second = Date.now();
    cli.child.kill('SIGTERM');
    const code = await cli.exited;
    expect(Date.now() - second).toBeLessThan(5000);
    expect(code).not.toBe(0);
    expect(typeof code).toBe('number');
    await pending;
  });

  it('cuts requests still running at drain.timeout, and still exits 0', async () => {
    const up = await upstream((reqIn, res, n, body) => {
      if (reqIn.url === '/endless') slowBody(200, 100)(reqIn, res, n, body);
      else hang(reqIn, res, n, body);
    });
    const cli = await startCli({
      drain: { delay: '300ms', timeout: '1s' },
      upstreams: { up: { endpoints: [up.url] } },
      routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', timeout: '60s', bodyTimeout: '60s', retry: { attempts: 0 } }],
    });
    // One response mid-body for 20s, one that has not even got headers.
    const endless = await stream(cli.port, '/endless');
    const headless = req(cli.url, { path: '/headless' }).then(
      (r) => ({ status: r.status, complete: r.complete }),
      (err: unknown) => ({ error: String(err) }),
    );
    await waitFor(() => up.seen.length === 2 && endless.chunks.length > 0, { timeout: 5000, what: 'both requests upstream' });

    const signalled = Date.now();
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    const took = Date.now() - signalled;
    // delay + timeout is 1.3s; the 20s body would have taken far longer.
    expect(took).toBeGreaterThanOrEqual(1200);
    expect(took).toBeLessThan(10_000);
    const cut = await endless.done;
    expect(cut.complete).toBe(false);
    expect(cut.body.length).toBeGreaterThan(0);
    expect(cut.body.length).toBeLessThan(fullBody(200).length);
    expect(await headless).toMatchObject({ error: expect.stringMatching(/socket hang up|ECONNRESET/) as unknown });
    expect(cli.logs.find((l) => l.msg === 'drain timeout: cutting in-flight requests')).toMatchObject({ level: 'warn', inflight: 2 });
  });

  it('exits 0 at once when nothing is in flight', async () => {
    const cli = await startCli({ drain: { delay: '300ms', timeout: '20s' } });
    const signalled = Date.now();
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(10_000);
  });

  it('reloads on SIGHUP', async () => {
    const a = await upstream(ok('A'));
    const b = await upstream(ok('B'));
    const cfg = (url: string) => ({
      reload: { pollInterval: '0s' },
      upstreams: { up: { endpoints: [url] } },
      routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up' }],
    });
    const cli = await startCli(cfg(a.url), true);
    expect((await req(cli.url)).body).toBe('A');
    const hashBefore = ((await (await fetch(`${cli.adminUrl}/health`)).json()) as { config: { hash: string } }).config.hash;

    // The file lives behind a symlink in a subdirectory and polling is off: writing it
    // raises no event in the watched directory, so only the signal can reload it.
    writeFileSync(cli.realConfigPath, stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, metrics: { listen: '127.0.0.1:0' }, ...cfg(b.url) }));
    await sleep(300);
    expect((await req(cli.url)).body).toBe('A');
    cli.child.kill('SIGHUP');
    await waitFor(async () => (await req(cli.url)).body === 'B', { timeout: 10_000, interval: 20, what: 'the SIGHUP reload' });
    const hashAfter = ((await (await fetch(`${cli.adminUrl}/health`)).json()) as { config: { hash: string } }).config.hash;
    expect(hashAfter).not.toBe(hashBefore);
    await waitFor(() => cli.logs.some((l) => l.msg === 'config reloaded' && l.hash === hashAfter), { timeout: 5000, what: 'the reload log line' });
    expect(cli.exitCode()).toBeUndefined();
  });

  it('applies a new log level on reload', async () => {
    const a = await upstream(ok('A'));
    const cfg = (level: string) => ({
      log: { level, accessLog: true },
      upstreams: { up: { endpoints: [a.url] } },
      routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up' }],
    });
    const cli = await startCli(cfg('info'));
    await req(cli.url, { path: '/before' });
    await waitFor(() => cli.logs.some((l) => l.access === true && l.path === '/before'), { timeout: 5000, what: 'the access log line' });

    writeFileSync(cli.configPath, stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, metrics: { listen: '127.0.0.1:0' }, ...cfg('warn') }));
    expect((await fetch(`${cli.adminUrl}/reload`, { method: 'POST' })).status).toBe(200);
    await req(cli.url, { path: '/after' });
    // A warn line written after the request: once it is in, so would the access line be.
    expect((await fetch(`${cli.adminUrl}/breakers/r1/isolate`, { method: 'POST' })).status).toBe(200);
    await waitFor(() => cli.logs.some((l) => l.msg === 'breaker isolate by admin'), { timeout: 5000, what: 'the warn line' });
    expect(cli.logs.filter((l) => l.access === true).map((l) => l.path)).toEqual(['/before']);
  });
});
