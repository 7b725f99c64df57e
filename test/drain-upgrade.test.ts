// Issue 8, "Drain" (README, WebSocket and Reload and drain), against the real CLI
// (`node dist/main.js`, built by `npm run build`): a handshake held open by the upstream
// counts as in flight and is cut at drain.timeout, with the exit within drain.timeout + 1 s;
// during the drain new upgrades get 503 OUTRIGGER_DRAINING with connection: close, and
// established WebSockets (and one whose handshake completes during the drain) get 1001.
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ok, startUpstream } from './helpers/upstream.js';
import { startWsUpstream, type WsUpstream } from './helpers/ws-upstream.js';
import { RawClient, newKey, startRawUpstream, wsHandshake } from './helpers/raw-upstream.js';
import { waitFor } from './helpers/wait.js';
import { requireMain, startCli as spawnCli, type Cli } from './helpers/cli.js';

// Slack on top of the README's bounds, for a loaded 2-core machine.
const SLACK_MS = 3000;

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
});

beforeAll(requireMain);

/** Spawns the CLI on a config with ephemeral loopback ports and waits for its "listening" line. */
const startCli = (cfg: Record<string, unknown>): Promise<Cli> => spawnCli(cfg, cleanups);

async function readyz(adminUrl: string): Promise<number> {
  try {
    return (await fetch(`${adminUrl}/readyz`, { signal: AbortSignal.timeout(2000) })).status;
  } catch {
    return 0;
  }
}

interface WsAttempt {
  ws: WebSocket;
  /** Set when the handshake completed. */
  openedAt(): number | null;
  /** Resolves when the client WebSocket has closed, with its code; never rejects. */
  closed: Promise<{ code: number; at: number }>;
  /** The HTTP status of a refused handshake, and its headers. */
  refused: Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string } | null>;
}

/** Starts a WebSocket handshake without waiting for it. */
function startWs(url: string): WsAttempt {
  const ws = new WebSocket(url);
  let opened: number | null = null;
  ws.once('open', () => (opened = Date.now()));
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; at: number }>((resolve) => ws.once('close', (code) => resolve({ code, at: Date.now() })));
  const refused = new Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: string } | null>((resolve) => {
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
      res.on('error', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }));
    });
    ws.once('open', () => resolve(null));
    ws.once('close', () => resolve(null));
  });
  cleanups.push(() => ws.terminate());
  return { ws, openedAt: () => opened, closed, refused };
}

function withBound<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${what}: not within ${ms}ms`)), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(t);
        reject(err instanceof Error ? err : new Error(String(err)));
      },
    );
  });
}

describe('drain with upgrades (the CLI)', () => {
  it('SIGTERM during a handshake the upstream never answers: it counts as in flight, is cut at drain.timeout, exit 0 within drain.timeout + 1 s', async () => {
    // Accepts the TCP connection, reads the handshake, never answers.
    const up = await startRawUpstream((r) => r.socket.on('data', () => undefined));
    cleanups.push(() => up.close());
    const delay = 0;
    const timeout = 2000;
    const cli = await startCli({
      drain: { delay: `${delay}ms`, timeout: `${timeout}ms` },
      upstreams: { up: { endpoints: [up.url] } },
      // The handshake's own deadline is far past the drain's, so only the drain can end it.
      routes: [{ name: 'ws', match: { pathPrefix: '/' }, upstream: 'up', retry: { attempts: 0 }, websocket: { handshakeTimeout: '60s' } }],
    });
    const a = startWs(`ws://127.0.0.1:${cli.port}/ws`);
    await waitFor(() => up.requests.length === 1, { timeout: 10_000, what: 'the handshake upstream' });

    const signalled = Date.now();
    cli.child.kill('SIGTERM');
    const code = await withBound(cli.exited, delay + timeout + 1000 + SLACK_MS, 'the exit after SIGTERM');
    const took = Date.now() - signalled;
    expect(code).toBe(0);
    expect(took).toBeLessThan(delay + timeout + 1000 + SLACK_MS);
    // It was waited for as in flight, up to drain.timeout, then cut.
    expect(took).toBeGreaterThanOrEqual(delay + timeout - 200);
    expect(cli.logs.find((l) => l.msg === 'drain timeout: cutting in-flight requests')).toMatchObject({ level: 'warn', inflight: 1 });
    expect(cli.logs.map((l) => l.msg)).toContain('drained');
    // The client never got a 101; its handshake failed.
    const closed = await withBound(a.closed, 5000, 'the client to see the handshake fail');
    expect(a.openedAt()).toBeNull();
    expect(closed.code).toBe(1006);
    await waitFor(() => up.openSockets() === 0, { timeout: 5000, what: 'the upstream socket to close' });
  });

  it('during drain.delay: new upgrades get 503 OUTRIGGER_DRAINING with connection: close; an established WebSocket gets 1001; exit 0', async () => {
    const wsUp = await startWsUpstream();
    cleanups.push(() => wsUp.close());
    const httpUp = await startUpstream(ok('ok'));
    cleanups.push(() => httpUp.close());
    const tunnelUp = await startRawUpstream((r) => {
      r.socket.on('data', () => undefined);
      r.socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: custom\r\n\r\n');
    });
    cleanups.push(() => tunnelUp.close());
    // A long delay: every check below happens inside it, on a listener still accepting.
    const delay = 6000;
    const timeout = 2000;
    const cli = await startCli({
      drain: { delay: `${delay}ms`, timeout: `${timeout}ms` },
      upstreams: { ws: { endpoints: [wsUp.url] }, http: { endpoints: [httpUp.url] }, tunnel: { endpoints: [tunnelUp.url] } },
      routes: [
        { name: 'ws', match: { pathPrefix: '/ws' }, upstream: 'ws' },
        { name: 'tunnel', match: { pathPrefix: '/tunnel' }, upstream: 'tunnel', upgrades: ['custom'] },
        { name: 'http', match: { pathPrefix: '/' }, upstream: 'http' },
      ],
    });

    // Before the signal: an established WebSocket, and an idle keep-alive HTTP connection.
    const est = startWs(`ws://127.0.0.1:${cli.port}/ws`);
    await withBound(new Promise<void>((r) => est.ws.once('open', () => r())), 10_000, 'the WebSocket to open');
    const keepAlive = await RawClient.connect(cli.port);
    cleanups.push(() => keepAlive.close());
    keepAlive.write('GET /a HTTP/1.1\r\nHost: app.local\r\n\r\n');
    const first = await keepAlive.readHead();
    expect(first.status).toBe(200);
    expect(first.headers.connection).toBe('keep-alive');
    expect((await keepAlive.readBytes(Number(first.headers['content-length']))).toString()).toBe('ok');

    const signalled = Date.now();
    cli.child.kill('SIGTERM');
    await waitFor(async () => (await readyz(cli.adminUrl)) === 503, { timeout: 5000, interval: 10, what: '/readyz to turn 503' });

    // A WebSocket upgrade on the existing keep-alive connection.
    keepAlive.write(wsHandshake('/ws/again', newKey()));
    const onKeepAlive = await keepAlive.readHead();
    expect(Date.now() - signalled).toBeLessThan(delay); // still inside the window
    expect(onKeepAlive.status).toBe(503);
    expect(onKeepAlive.headers['x-outrigger-error']).toBe('OUTRIGGER_DRAINING');
    expect(onKeepAlive.headers.connection).toBe('close');
    await keepAlive.waitClosed(5000);

    // A WebSocket upgrade on a new connection.
    const fresh = startWs(`ws://127.0.0.1:${cli.port}/ws/new`);
    const refused = await withBound(fresh.refused, 5000, 'the answer to a new upgrade');
    expect(refused).not.toBeNull();
    expect(refused?.status).toBe(503);
    expect(refused?.headers['x-outrigger-error']).toBe('OUTRIGGER_DRAINING');
    expect(refused?.headers.connection).toBe('close');
    expect(JSON.parse(refused?.body ?? '{}')).toMatchObject({ error: { code: 'OUTRIGGER_DRAINING' } });
    expect(fresh.openedAt()).toBeNull();

    // A tunnel upgrade on a new connection.
    const t = await RawClient.connect(cli.port);
    cleanups.push(() => t.close());
    t.write('GET /tunnel/x HTTP/1.1\r\nHost: app.local\r\nConnection: Upgrade\r\nUpgrade: custom\r\n\r\n');
    const tunnelHead = await t.readHead();
    expect(tunnelHead.status).toBe(503);
    expect(tunnelHead.headers['x-outrigger-error']).toBe('OUTRIGGER_DRAINING');
    expect(tunnelHead.headers.connection).toBe('close');
    expect(Date.now() - signalled).toBeLessThan(delay);
    // None of them reached an upstream.
    expect(wsUp.requests).toHaveLength(1);
    expect(tunnelUp.requests).toHaveLength(0);

    // The established WebSocket still relays during the drain...
    const echoed = new Promise<string>((r) => est.ws.once('message', (d: Buffer) => r(d.toString())));
    est.ws.send('still here');
    expect(await withBound(echoed, 5000, 'the echo during the drain')).toBe('still here');
    // ...and is closed with 1001 once the drain ends.
    const closed = await withBound(est.closed, delay + timeout + 1000 + SLACK_MS, 'the 1001');
    expect(closed.code).toBe(1001);
    const code = await withBound(cli.exited, delay + timeout + 1000 + SLACK_MS, 'the exit after SIGTERM');
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(delay + timeout + 1000 + SLACK_MS);
  });

  it('a handshake that completes during the drain is closed with 1001; exit 0', async () => {
    let up: WsUpstream | null = null;
    // The upstream answers its 101 one second after the handshake arrives.
    up = await startWsUpstream({
      onRequest: (req, socket) => {
        setTimeout(() => {
          if (socket.destroyed) return;
          up?.wss.handleUpgrade(req, socket, Buffer.alloc(0), (ws) => {
            up?.connections.push(ws);
            ws.on('message', (d) => ws.send(d));
          });
        }, 1000);
        return false;
      },
    });
    cleanups.push(() => up?.close());
    const delay = 300;
    const timeout = 5000;
    const cli = await startCli({
      drain: { delay: `${delay}ms`, timeout: `${timeout}ms` },
      upstreams: { up: { endpoints: [up.url] } },
      routes: [{ name: 'ws', match: { pathPrefix: '/' }, upstream: 'up', retry: { attempts: 0 } }],
    });
    const a = startWs(`ws://127.0.0.1:${cli.port}/ws`);
    await waitFor(() => up?.requests.length === 1, { timeout: 10_000, what: 'the handshake upstream' });
    const signalled = Date.now();
    cli.child.kill('SIGTERM');
    const closed = await withBound(a.closed, delay + timeout + 1000 + SLACK_MS, 'the client close');
    // It did switch (the 101 came during the drain), then was closed like every other connection.
    expect(a.openedAt()).not.toBeNull();
    expect(a.openedAt()).toBeGreaterThan(signalled);
    expect(closed.code).toBe(1001);
    const code = await withBound(cli.exited, delay + timeout + 1000 + SLACK_MS, 'the exit after SIGTERM');
    expect(code).toBe(0);
    expect(Date.now() - signalled).toBeLessThan(delay + timeout + 1000 + SLACK_MS);
    // The drain waited for the handshake, not for drain.timeout.
    expect(cli.logs.map((l) => l.msg)).not.toContain('drain timeout: cutting in-flight requests');
  });
});
