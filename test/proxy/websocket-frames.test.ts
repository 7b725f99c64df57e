// Issue 8, "No frame lost" and "Backpressure" (README, WebSocket): frames that come in the
// same TCP write as the upstream's 101, bytes the client sends right after its handshake,
// 1 MiB messages each way under a slow reader with the proxy's memory bounded, and a
// message over websocket.maxBufferedBytes closing both legs with 1009.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { WebSocket, type RawData } from 'ws';
import { stringify } from 'yaml';
import { useCleanup } from '../helpers/cleanup.js';
import { metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { FrameReader, OP_TEXT, RawClient, acceptFor, frame, newKey, startRawUpstream, switchingHead, wsHandshake, type RawRequest } from '../helpers/raw-upstream.js';
import { startWsUpstream } from '../helpers/ws-upstream.js';
import { sleep, waitFor } from '../helpers/wait.js';

const track = useCleanup();
const MAIN_JS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');

const wsUrl = (base: string, path = '/ws'): string => base.replace('http://', 'ws://') + path;

function open(url: string, opts: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, [], opts);
    const t = setTimeout(() => {
      ws.terminate();
      reject(new Error(`no open within 10s: ${url}`));
    }, 10_000);
    ws.once('open', () => {
      clearTimeout(t);
      resolve(ws);
    });
    ws.once('error', (err) => {
      clearTimeout(t);
      reject(err);
    });
    ws.once('unexpected-response', (_req, res) => {
      clearTimeout(t);
      res.resume();
      reject(new Error(`status ${res.statusCode}`));
    });
  });
}

const asBuffer = (d: RawData): Buffer => (Array.isArray(d) ? Buffer.concat(d) : Buffer.isBuffer(d) ? d : Buffer.from(d));

function closed(ws: WebSocket, timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
  return new Promise((resolve, reject) => {
    if (ws.readyState === WebSocket.CLOSED) return reject(new Error('already closed'));
    const t = setTimeout(() => reject(new Error(`no close within ${timeoutMs}ms`)), timeoutMs);
    ws.once('close', (code, reason) => {
      clearTimeout(t);
      resolve({ code, reason: reason.toString() });
    });
  });
}

/**
 * An upstream doing the WebSocket handshake itself, that writes its 101 and the `greeting`
 * frames in ONE socket.write, then records the text of every frame the proxy sends it.
 */
async function greetingUpstream(greeting: string[]) {
  const received: string[][] = [];
  const up = await startRawUpstream((r: RawRequest) => {
    const mine: string[] = [];
    received.push(mine);
    const reader = new FrameReader();
    const take = (c: Buffer) => {
      for (const f of reader.push(c)) {
        if (f.opcode === OP_TEXT) mine.push(f.payload.toString());
        // Answer a close so the proxy's leg closes cleanly.
        if (f.opcode === 0x8) r.socket.end(frame(0x8, f.payload.subarray(0, 2), false));
      }
    };
    r.socket.on('data', take);
    r.socket.write(Buffer.concat([Buffer.from(switchingHead(r), 'latin1'), ...greeting.map((g) => frame(OP_TEXT, g, false))]));
    if (r.rest.length > 0) take(r.rest);
  });
  return { up: track(up), received };
}

describe('frames sent with the 101', () => {
  it('two text frames in the same TCP write as the 101 both arrive, in order, in 50 of 50 connections', async () => {
    const { up } = await greetingUpstream(['hello-1', 'hello-2']);
    const px = track(await startProxy(oneRoute(up.url)));
    const results: string[][] = [];
    const one = async (): Promise<void> => {
      const ws = new WebSocket(wsUrl(px.url));
      const got: string[] = [];
      // Listen before 'open': a frame relayed right with the 101 is emitted on the next tick.
      ws.on('message', (d) => got.push(asBuffer(d).toString()));
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no open')), 10_000);
        ws.once('open', () => {
          clearTimeout(t);
          resolve();
        });
        ws.once('error', reject);
        ws.once('unexpected-response', (_q, res) => reject(new Error(`status ${res.statusCode}`)));
      });
      await waitFor(() => got.length >= 2, { timeout: 2000, what: 'both greeting frames' }).catch(() => undefined);
      results.push([...got]);
      const c = closed(ws);
      ws.close(1000);
      await c;
    };
    // Five at a time, 50 in all.
    for (let batch = 0; batch < 10; batch++) await Promise.all([1, 2, 3, 4, 5].map(() => one()));
    expect(results).toHaveLength(50);
    const bad = results.filter((r) => r.length !== 2 || r[0] !== 'hello-1' || r[1] !== 'hello-2');
    expect(bad).toEqual([]);
    expect(up.requests).toHaveLength(50);
  });

  it('a ws client that sends on open: its message reaches the upstream', async () => {
    const { up, received } = await greetingUpstream(['greeting']);
    const px = track(await startProxy(oneRoute(up.url)));
    for (let i = 0; i < 10; i++) {
      const ws = new WebSocket(wsUrl(px.url));
      ws.on('error', () => undefined);
      ws.once('open', () => {
        ws.send(`first-${i}`);
        ws.send(`second-${i}`);
      });
      await waitFor(() => (received[i]?.length ?? 0) >= 2, { timeout: 10_000, what: `the client's first frames upstream (connection ${i})` });
      expect(received[i]).toEqual([`first-${i}`, `second-${i}`]);
      ws.terminate();
    }
  });

  it('a raw client that writes its handshake and a masked frame in one write: the frame reaches the upstream', async () => {
    const { up, received } = await greetingUpstream(['greeting']);
    const px = track(await startProxy(oneRoute(up.url)));
    const key = newKey();
    const c = await RawClient.connect(px.app.proxy.port);
    track({ close: () => c.close() });
    c.write(Buffer.concat([Buffer.from(wsHandshake('/ws', key), 'latin1'), frame(OP_TEXT, 'early-bird', true), frame(OP_TEXT, 'second', true)]));
    const head = await c.readHead();
    expect(head.status).toBe(101);
    expect(head.headers['sec-websocket-accept']).toBe(acceptFor(key));
    // The greeting comes to the client first...
    const [g] = await c.readFrames(1);
    expect(g?.payload.toString()).toBe('greeting');
    expect(g?.masked).toBe(false);
    // ...and the client's early frames reach the upstream, in order.
    await waitFor(() => (received[0]?.length ?? 0) >= 2, { timeout: 10_000, what: 'the early frames upstream' });
    expect(received[0]).toEqual(['early-bird', 'second']);
    expect(up.requests).toHaveLength(1);
  });
});

// ---------------------------------------------------------------------------------------

interface Cli {
  child: ChildProcess;
  pid: number;
  url: string;
  metricsUrl: string;
  output(): string;
}

/** Starts `node dist/main.js` on a config with loopback ephemeral ports. */
async function startCli(cfg: Record<string, unknown>): Promise<Cli> {
  if (!existsSync(MAIN_JS)) throw new Error(`${MAIN_JS} is missing: run npm run build first`);
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-wsframes-'));
  const configPath = join(dir, 'outrigger.yaml');
  writeFileSync(configPath, stringify({ listen: '127.0.0.1:0', admin: { listen: '127.0.0.1:0' }, metrics: { listen: '127.0.0.1:0' }, ...cfg }));
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env.OUTRIGGER_LOG_LEVEL;
  delete env.OUTRIGGER_ADMIN_TOKEN;
  delete env.OUTRIGGER_CONFIG;
  const child = spawn(process.execPath, [MAIN_JS, '--config', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let exited = false;
  const exit = new Promise<void>((r) =>
    child.once('exit', () => {
      exited = true;
      r();
    }),
  );
  track({
    close: async () => {
      if (!exited) {
        child.kill('SIGKILL');
        await exit;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const line = await waitFor(
    () => {
      if (exited) throw new Error(`the proxy exited before listening:\n${out}`);
      for (const l of out.split('\n')) {
        try {
          const j = JSON.parse(l) as Record<string, unknown>;
          if (j.msg === 'outrigger listening') return j;
        } catch {
          // not a log line
        }
      }
      return undefined;
    },
    { timeout: 20_000, interval: 20, what: 'the "outrigger listening" line' },
  );
  const port = (s: unknown) => Number(String(s).split(':').pop());
  return { child, pid: child.pid as number, url: `http://127.0.0.1:${port(line.listen)}`, metricsUrl: `http://127.0.0.1:${port(line.metrics)}`, output: () => out };
}

/** VmRSS of a process, in bytes. */
function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** Samples a process's RSS every 25ms until stopped; returns the peak. */
function sampleRss(pid: number): { stop(): number } {
  let peak = rssOf(pid);
  const t = setInterval(() => {
    try {
      peak = Math.max(peak, rssOf(pid));
    } catch {
      // exited
    }
  }, 25);
  return {
    stop() {
      clearInterval(t);
      return peak;
    },
  };
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;
// Loose: the proxy holds at most about two maxBufferedBytes per direction; Node's own
// allocator and the message copies add some. Unbounded buffering of the tests below
// would not show (one message), but a leak per connection or a copy per byte would.
const RSS_GROWTH_LIMIT = 200 * MiB;

describe('backpressure under a slow reader (node dist/main.js)', () => {
  it('a 1 MiB message each way arrives intact while the reader pauses ~1s; the proxy RSS stays bounded', async () => {
    const up = track(await startWsUpstream());
    const cli = await startCli(oneRoute(up.url));
    const before = rssOf(cli.pid);
    const rss = sampleRss(cli.pid);

    const client = await open(wsUrl(cli.url));
    track({ close: () => client.terminate() });
    await waitFor(() => up.connections.length === 1, { timeout: 10_000, what: 'the upstream leg' });
    const server = up.connections[0] as WebSocket;
    // Echo off: the upstream leg only records what it gets and sends what the test says.
    server.removeAllListeners('message');

    // Client to upstream, the upstream reading nothing for ~1s.
    const toUp = randomBytes(MiB);
    server.pause();
    const upGot: { b?: Buffer } = {};
    server.once('message', (d) => (upGot.b = asBuffer(d)));
    client.send(toUp, { binary: true });
    await sleep(1000);
    expect(upGot.b).toBeUndefined(); // paused: nothing delivered yet
    server.resume();
    const atUp = await waitFor(() => upGot.b, { timeout: 15_000, what: 'the 1 MiB message upstream' });
    expect(atUp.length).toBe(MiB);
    expect(sha(atUp)).toBe(sha(toUp));

    // Upstream to client, the client reading nothing for ~1s.
    const toClient = randomBytes(MiB);
    client.pause();
    const clientGot: { b?: Buffer } = {};
    client.once('message', (d) => (clientGot.b = asBuffer(d)));
    server.send(toClient, { binary: true });
    await sleep(1000);
    expect(clientGot.b).toBeUndefined();
    client.resume();
    const atClient = await waitFor(() => clientGot.b, { timeout: 15_000, what: 'the 1 MiB message at the client' });
    expect(atClient.length).toBe(MiB);
    expect(sha(atClient)).toBe(sha(toClient));

    const peak = rss.stop();
    expect(peak - before).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(client.readyState).toBe(WebSocket.OPEN);
    client.close(1000);
  });

  it('64 MiB in 64 KiB messages to a reader paused ~1s: all arrive in order, no 1009, RSS bounded', async () => {
    const up = track(await startWsUpstream());
    const cli = await startCli(oneRoute(up.url));
    const before = rssOf(cli.pid);
    const rss = sampleRss(cli.pid);
    const client = await open(wsUrl(cli.url));
    track({ close: () => client.terminate() });
    await waitFor(() => up.connections.length === 1, { timeout: 10_000, what: 'the upstream leg' });
    const server = up.connections[0] as WebSocket;
    server.removeAllListeners('message');
    const count = 1024;
    const size = 64 * 1024;
    const expected = createHash('sha256');
    const got = createHash('sha256');
    let received = 0;
    let outOfOrder = 0;
    client.pause();
    client.on('message', (d) => {
      const b = asBuffer(d);
      if (b.readUInt32BE(0) !== received) outOfOrder++;
      got.update(b);
      received++;
    });
    let sent = 0;
    let closeCode: number | null = null;
    client.once('close', (code) => (closeCode = code));
    // The upstream writes as fast as its socket lets it (awaiting each send's callback
    // keeps the test process itself bounded too).
    const sending = (async () => {
      for (let i = 0; i < count; i++) {
        const m = randomBytes(size);
        m.writeUInt32BE(i, 0);
        expected.update(m);
        await new Promise<void>((resolve, reject) => server.send(m, { binary: true }, (err) => (err ? reject(err) : resolve())));
        sent++;
      }
    })();
    sending.catch(() => undefined);
    await sleep(1000);
    // The slow reader slowed the writer: while it read nothing, the upstream could not get
    // all 64 MiB out (what it did is in kernel socket buffers, ~8 MiB here, plus the
    // proxy's half of maxBufferedBytes before it pauses the upstream leg).
    const sentDuringPause = sent;
    expect(received).toBe(0);
    client.resume();
    await sending;
    await waitFor(() => received === count || closeCode !== null, { timeout: 60_000, interval: 20, what: 'all messages at the client' });
    expect(closeCode).toBeNull();
    expect(received).toBe(count);
    expect(outOfOrder).toBe(0);
    expect(got.digest('hex')).toBe(expected.digest('hex'));
    expect(sentDuringPause).toBeLessThan(count);
    const peak = rss.stop();
    expect(peak - before).toBeLessThan(RSS_GROWTH_LIMIT);
    expect(await metricValue(cli.metricsUrl, 'outrigger_websocket_closed_total', { route: 'r1', reason: 'buffer_overflow' })).toBe(0);
    client.close(1000);
  });
});

describe('websocket.maxBufferedBytes', () => {
  it('a client message over the limit closes both legs with 1009 and counts buffer_overflow', async () => {
    const up = track(await startWsUpstream());
    const px = track(await startProxy(oneRoute(up.url, { websocket: { maxBufferedBytes: '64KiB' } })));
    const client = await open(wsUrl(px.url));
    track({ close: () => client.terminate() });
    client.on('error', () => undefined);
    await waitFor(() => up.connections.length === 1, { timeout: 10_000, what: 'the upstream leg' });
    const server = up.connections[0] as WebSocket;
    server.on('error', () => undefined);
    // Under the limit: relayed (the upstream echoes it).
    const echoed = new Promise<Buffer>((r) => client.once('message', (d) => r(asBuffer(d))));
    client.send(Buffer.alloc(32 * 1024, 1));
    expect((await echoed).length).toBe(32 * 1024);

    const clientClosed = closed(client);
    const serverClosed = closed(server);
    client.send(Buffer.alloc(100 * 1024, 2));
    const [c, s] = await Promise.all([clientClosed, serverClosed]);
    expect(c.code).toBe(1009);
    expect(s.code).toBe(1009);
    await waitFor(async () => (await metricValue(px.metricsUrl, 'outrigger_websocket_closed_total', { route: 'r1', reason: 'buffer_overflow' })) === 1, {
      timeout: 5000,
      what: 'closed_total{reason="buffer_overflow"} = 1',
    });
  });

  it('an upstream message over the limit closes both legs with 1009 and counts buffer_overflow', async () => {
    const up = track(await startWsUpstream());
    const px = track(await startProxy(oneRoute(up.url, { websocket: { maxBufferedBytes: '64KiB' } })));
    const client = await open(wsUrl(px.url));
    track({ close: () => client.terminate() });
    client.on('error', () => undefined);
    await waitFor(() => up.connections.length === 1, { timeout: 10_000, what: 'the upstream leg' });
    const server = up.connections[0] as WebSocket;
    server.on('error', () => undefined);
    const clientClosed = closed(client);
    const serverClosed = closed(server);
    let clientMessages = 0;
    client.on('message', () => clientMessages++);
    server.send(Buffer.alloc(100 * 1024, 3));
    const [c, s] = await Promise.all([clientClosed, serverClosed]);
    expect(c.code).toBe(1009);
    expect(s.code).toBe(1009);
    expect(clientMessages).toBe(0);
    await waitFor(async () => (await metricValue(px.metricsUrl, 'outrigger_websocket_closed_total', { route: 'r1', reason: 'buffer_overflow' })) === 1, {
      timeout: 5000,
      what: 'closed_total{reason="buffer_overflow"} = 1',
    });
  });
});
