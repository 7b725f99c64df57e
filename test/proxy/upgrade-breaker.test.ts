// Issue 8, "Breaker verdicts count only what the upstream did" (README, Breakers and
// WebSocket): a client-side error during a half-open probe (an invalid client handshake,
// an aborted chunked upload, a client leaving a WebSocket handshake) never closes the
// breaker; an invalid 101 is a breaker failure.
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { useCleanup } from '../helpers/cleanup.js';
import { req } from '../helpers/http.js';
import { metricValue, oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { RawClient, acceptFor, newKey, wsHandshake } from '../helpers/raw-upstream.js';
import { ok, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { sleep, waitFor } from '../helpers/wait.js';

const track = useCleanup();
const HALF_OPEN_AFTER_MS = 300;

type UpgradeAnswer = (req: IncomingMessage, socket: Socket, head: Buffer) => void;

interface Setup {
  up: TestUpstream;
  px: TestProxy;
  /** Upgrade requests the upstream received. */
  upgrades: IncomingMessage[];
  /** How the upstream answers the next upgrades. */
  setUpgrade(a: UpgradeAnswer): void;
  /** A real WebSocket accept, for setUpgrade. */
  accept: UpgradeAnswer;
  /** HTTP requests whose head reached the upstream (whether or not their body ended). */
  heads(): number;
  /** HTTP requests at the upstream that have closed (answered, or aborted mid-body). */
  closedRequests(): number;
  /** Upgrade sockets at the upstream open right now (pooled HTTP sockets are not counted). */
  openUpgrades(): number;
}

/** One upstream for HTTP and upgrades, and a proxy whose breaker opens on the first failure. */
async function setup(route: Record<string, unknown> = {}): Promise<Setup> {
  const up = track(await startUpstream(ok('down', 503)));
  const wss = new WebSocketServer({ noServer: true });
  track({ close: () => wss.close() });
  const upgrades: IncomingMessage[] = [];
  let heads = 0;
  let closedRequests = 0;
  let openUpgrades = 0;
  up.server.on('request', (r: IncomingMessage) => {
    heads++;
    r.once('close', () => closedRequests++);
  });
  const accept: UpgradeAnswer = (r, socket, head) => wss.handleUpgrade(r, socket, head, (ws) => ws.on('message', (d) => ws.send(d)));
  let answer: UpgradeAnswer = accept;
  up.server.on('upgrade', (r: IncomingMessage, socket: Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    openUpgrades++;
    socket.once('close', () => openUpgrades--);
    // node:http servers keep half-open sockets: a FIN from the proxy closes ours too.
    socket.once('end', () => socket.destroy());
    upgrades.push(r);
    answer(r, socket, head);
  });
  const px = track(
    await startProxy(
      oneRoute(up.url, {
        retry: { attempts: 0 },
        breaker: { consecutiveFailures: 1, halfOpenAfter: `${HALF_OPEN_AFTER_MS}ms` },
        ...route,
      }),
    ),
  );
  return { up, px, upgrades, setUpgrade: (a) => (answer = a), accept, heads: () => heads, closedRequests: () => closedRequests, openUpgrades: () => openUpgrades };
}

interface BreakerView {
  state: string;
  consecutiveFailures: number;
  opens: number;
}

async function breaker(px: TestProxy): Promise<BreakerView> {
  const list = (await (await fetch(`${px.adminUrl}/breakers`, { signal: AbortSignal.timeout(5000) })).json()) as Array<BreakerView & { name: string }>;
  const b = list.find((x) => x.name === 'r1');
  if (!b) throw new Error('no breaker r1');
  return b;
}

/** Opens the breaker with one failed HTTP request, then waits until the next call would be the probe. */
async function openThenWait(s: Setup): Promise<void> {
  s.up.behave = ok('down', 503);
  const r = await req(s.px.url, { path: '/fail' });
  expect(r.status).toBe(503);
  expect(r.body).toBe('down');
  expect((await breaker(s.px)).state).toBe('open');
  await sleep(HALF_OPEN_AFTER_MS + 200);
}

/** The next normal request goes out as the probe: the upstream answers it and the breaker closes. */
async function nextRequestProbes(s: Setup): Promise<void> {
  s.up.behave = ok('back');
  const before = s.up.seen.length;
  const r = await req(s.px.url, { path: '/after' });
  expect(r.headers['x-outrigger-error']).toBeUndefined();
  expect(r.status).toBe(200);
  expect(r.body).toBe('back');
  expect(s.up.seen.length).toBe(before + 1);
  expect((await breaker(s.px)).state).toBe('closed');
}

/** Sends raw handshake bytes and reads the whole answer. */
async function rawUpgrade(px: TestProxy, bytes: string): Promise<{ status: number; headers: Record<string, string>; body: string }> {
  const c = await RawClient.connect(px.app.proxy.port);
  try {
    c.write(bytes);
    const head = await c.readHead(10_000);
    await c.waitEnded(10_000);
    return { status: head.status, headers: head.headers, body: c.buf.toString('latin1') };
  } finally {
    c.close();
  }
}

describe('an invalid client handshake never reaches the breaker', () => {
  it('Sec-WebSocket-Protocol: a, a while the probe is due: 400, the upstream sees nothing, the breaker is not closed', async () => {
    const s = await setup();
    await openThenWait(s);
    const seenBefore = s.up.seen.length;
    const a = await rawUpgrade(s.px, wsHandshake('/ws', newKey(), ['Sec-WebSocket-Protocol: a, a']));
    expect(a.status).toBe(400);
    expect(a.headers['x-outrigger-error']).toBe('OUTRIGGER_BAD_REQUEST');
    expect(s.upgrades).toHaveLength(0);
    expect(s.up.seen.length).toBe(seenBefore);
    expect(s.heads()).toBe(seenBefore);
    const b = await breaker(s.px);
    expect(b.state).not.toBe('closed');
    // Not a failure either: it neither re-opened nor counted.
    expect(b.opens).toBe(1);
    await nextRequestProbes(s);
  });

  it('Sec-WebSocket-Protocol: a, a while closed: 400, no failure counted', async () => {
    const s = await setup();
    const a = await rawUpgrade(s.px, wsHandshake('/ws', newKey(), ['Sec-WebSocket-Protocol: a, a']));
    expect(a.status).toBe(400);
    expect(s.upgrades).toHaveLength(0);
    expect(await breaker(s.px)).toMatchObject({ state: 'closed', consecutiveFailures: 0, opens: 0 });
  });
});

describe('an aborted chunked upload during the half-open probe', () => {
  it('leaves the breaker half-open, and the next normal request is the probe', async () => {
    const s = await setup();
    await openThenWait(s);
    // The upstream reads the body and would answer at its end, which never comes.
    s.up.behave = ok('never');
    const c = await RawClient.connect(s.px.app.proxy.port);
    track({ close: () => c.close() });
    c.write('POST /upload HTTP/1.1\r\nHost: app.local\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n');
    // The probe is out: its head (and the first chunk) reached the upstream.
    await waitFor(() => s.heads() === 2, { timeout: 10_000, what: 'the probe upstream' });
    expect((await breaker(s.px)).state).toBe('half-open');
    await sleep(100);
    // Abort mid-upload: the client's socket goes away with no terminating chunk.
    c.socket.resetAndDestroy();
    await waitFor(() => s.px.app.state.inflight === 0, { timeout: 10_000, what: 'the proxy to finish the aborted request' });
    await waitFor(() => s.closedRequests() === 2, { timeout: 10_000, what: 'the upstream request to be aborted' });
    // No verdict: the breaker must not have closed (nor counted a failure), whatever time passes.
    for (let i = 0; i < 5; i++) {
      expect((await breaker(s.px)).state).toBe('half-open');
      await sleep(100);
    }
    expect(await metricValue(s.px.metricsUrl, 'outrigger_breaker_transitions_total', { breaker: 'r1', to: 'closed' })).toBe(0);
    // README, Metrics: a client that goes away never counts against the attempt outcomes.
    expect(await metricValue(s.px.metricsUrl, 'outrigger_upstream_attempts_total', { route: 'r1', outcome: 'reset' })).toBe(0);
    await nextRequestProbes(s);
  });

  it('also when the client ends its upload early with FIN instead of a reset', async () => {
    const s = await setup();
    await openThenWait(s);
    s.up.behave = ok('never');
    const c = await RawClient.connect(s.px.app.proxy.port);
    track({ close: () => c.close() });
    c.write('POST /upload HTTP/1.1\r\nHost: app.local\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n');
    await waitFor(() => s.heads() === 2, { timeout: 10_000, what: 'the probe upstream' });
    await sleep(100);
    c.socket.end();
    await waitFor(() => s.px.app.state.inflight === 0, { timeout: 10_000, what: 'the proxy to finish the aborted request' });
    await waitFor(() => s.closedRequests() === 2, { timeout: 10_000, what: 'the upstream request to be aborted' });
    await sleep(200);
    expect((await breaker(s.px)).state).toBe('half-open');
    await nextRequestProbes(s);
  });
});

describe('a client that leaves during a WebSocket handshake probe', () => {
  it('the upstream answers 503 after the client left: the breaker is not closed', async () => {
    const s = await setup();
    await openThenWait(s);
    s.setUpgrade((_r, socket) => {
      setTimeout(() => socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\nContent-Length: 4\r\n\r\nbusy'), 500);
    });
    const c = await RawClient.connect(s.px.app.proxy.port);
    c.write(wsHandshake('/ws', newKey()));
    await waitFor(() => s.upgrades.length === 1, { timeout: 10_000, what: 'the handshake probe upstream' });
    expect((await breaker(s.px)).state).toBe('half-open');
    c.socket.resetAndDestroy();
    // The upstream answers (500ms after it got the handshake) and the proxy lets go of it.
    await waitFor(() => s.openUpgrades() === 0, { timeout: 10_000, what: 'the upstream handshake to end' });
    await waitFor(() => s.px.app.state.inflight === 0, { timeout: 10_000, what: 'the handshake exchange to finish' });
    await sleep(200);
    const b = await breaker(s.px);
    expect(b.state).not.toBe('closed');
    expect(['open', 'half-open']).toContain(b.state);
    expect(await metricValue(s.px.metricsUrl, 'outrigger_breaker_transitions_total', { breaker: 'r1', to: 'closed' })).toBe(0);
  });

  it('the upstream never answers: the probe is released at once, without a verdict, and the upstream let go', async () => {
    const s = await setup({ breaker: { consecutiveFailures: 1, halfOpenAfter: `${HALF_OPEN_AFTER_MS}ms`, probeTimeout: '1s' }, websocket: { handshakeTimeout: '20s' } });
    await openThenWait(s);
    s.setUpgrade(() => undefined);
    const c = await RawClient.connect(s.px.app.proxy.port);
    c.write(wsHandshake('/ws', newKey()));
    await waitFor(() => s.upgrades.length === 1, { timeout: 10_000, what: 'the handshake probe upstream' });
    c.socket.resetAndDestroy();
    const left = Date.now();
    // Sampled until the upstream socket is let go (probeTimeout, 1s, + slack): never closed.
    const states: string[] = [];
    while (s.openUpgrades() > 0 && Date.now() - left < 1000 + 5000) {
      states.push((await breaker(s.px)).state);
      await sleep(50);
    }
    expect(s.openUpgrades()).toBe(0);
    await sleep(200);
    states.push((await breaker(s.px)).state);
    expect(states).not.toContain('closed');
    // The client left: no verdict, so still half-open, not re-opened; the next request probes.
    expect(states[states.length - 1]).toBe('half-open');
    expect((await breaker(s.px)).opens).toBe(1);
    expect(Date.now() - left).toBeLessThan(1000 + 5000);
    expect(await metricValue(s.px.metricsUrl, 'outrigger_breaker_transitions_total', { breaker: 'r1', to: 'closed' })).toBe(0);
  });

  it('the upstream accepts after the client left: its leg is closed, not leaked', async () => {
    const s = await setup();
    await openThenWait(s);
    s.setUpgrade((r, socket, head) => setTimeout(() => s.accept(r, socket, head), 500));
    const c = await RawClient.connect(s.px.app.proxy.port);
    c.write(wsHandshake('/ws', newKey()));
    await waitFor(() => s.upgrades.length === 1, { timeout: 10_000, what: 'the handshake probe upstream' });
    c.socket.resetAndDestroy();
    await waitFor(() => s.openUpgrades() === 0, { timeout: 10_000, what: 'the upstream leg to be closed' });
    await waitFor(() => s.px.app.state.inflight === 0, { timeout: 10_000, what: 'the handshake exchange to finish' });
    // The upstream did accept: a real verdict (closed) or none (half-open); never stuck.
    const b = await breaker(s.px);
    expect(['closed', 'half-open']).toContain(b.state);
    expect(await metricValue(s.px.metricsUrl, 'outrigger_websocket_connections', { route: 'r1' })).toBe(0);
  });
});

describe('an invalid 101 is a breaker failure', () => {
  const badAccept: UpgradeAnswer = (_r, socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(newKey())}\r\n\r\n`);
  };

  it('opens a closed breaker (failOn includes reset by default)', async () => {
    const s = await setup();
    s.setUpgrade(badAccept);
    const a = await rawUpgrade(s.px, wsHandshake('/ws', newKey()));
    expect(a.status).toBe(502);
    expect(a.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect(await breaker(s.px)).toMatchObject({ state: 'open', opens: 1 });
    // Open: the next handshake fails fast, without touching the upstream.
    const b = await rawUpgrade(s.px, wsHandshake('/ws', newKey()));
    expect(b.status).toBe(503);
    expect(b.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(s.upgrades).toHaveLength(1);
  });

  it('as the half-open probe, re-opens the breaker', async () => {
    const s = await setup();
    await openThenWait(s);
    s.setUpgrade(badAccept);
    const a = await rawUpgrade(s.px, wsHandshake('/ws', newKey()));
    expect(a.status).toBe(502);
    expect(await breaker(s.px)).toMatchObject({ state: 'open', opens: 2 });
  });

  it('is not counted when failOn leaves reset out', async () => {
    const s = await setup({ breaker: { consecutiveFailures: 1, halfOpenAfter: `${HALF_OPEN_AFTER_MS}ms`, failOn: ['connect-failure', 'timeout'] } });
    s.setUpgrade(badAccept);
    const a = await rawUpgrade(s.px, wsHandshake('/ws', newKey()));
    expect(a.status).toBe(502);
    expect((await breaker(s.px)).state).toBe('closed');
  });
});
