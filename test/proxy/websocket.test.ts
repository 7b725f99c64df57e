import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { startWsUpstream, type WsUpstream } from '../helpers/ws-upstream.js';
import { oneRoute, startProxy, metricValue, type TestProxy } from '../helpers/proxy.js';
import { refusedPort } from '../helpers/upstream.js';

let up: WsUpstream | undefined;
let px: TestProxy | undefined;
afterEach(async () => {
  await px?.close();
  await up?.close();
  px = up = undefined;
});

function wsUrl(base: string, path = '/chat'): string {
  return base.replace('http://', 'ws://') + path;
}

function open(url: string, protocols: string[] = [], opts: ConstructorParameters<typeof WebSocket>[2] = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, opts);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => reject(Object.assign(new Error(`status ${res.statusCode}`), { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() })));
    });
  });
}

function nextMessage(ws: WebSocket): Promise<string> {
  return new Promise((resolve) => ws.once('message', (d) => resolve(d.toString())));
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function until(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error('condition not met in time');
}

describe('websocket', () => {
  it('echoes through the proxy with the subprotocol the upstream chose', async () => {
    up = await startWsUpstream({ protocols: ['chat.v2'] });
    px = await startProxy(oneRoute(up.url));
    const ws = await open(wsUrl(px.url), ['chat.v1', 'chat.v2']);
    expect(ws.protocol).toBe('chat.v2');
    ws.send('hello');
    expect(await nextMessage(ws)).toBe('hello');
    ws.send(Buffer.from([1, 2, 3]));
    expect(await nextMessage(ws)).toBe('\u0001\u0002\u0003');
    expect(up.requests[0]?.headers['sec-websocket-protocol']).toMatch(/^chat\.v1, ?chat\.v2$/);
    expect(up.requests[0]?.headers['x-forwarded-for']).toBeDefined();
    expect(await metricValue(px.metricsUrl, 'outrigger_websocket_connections', { route: 'r1' })).toBe(1);
    const c = closed(ws);
    ws.close(1000, 'bye');
    await c;
    await until(async () => (await metricValue(px!.metricsUrl, 'outrigger_websocket_closed_total', { route: 'r1', reason: 'client' })) === 1);
    expect(await metricValue(px.metricsUrl, 'outrigger_websocket_upgrades_total', { route: 'r1', outcome: 'accepted' })).toBe(1);
  });

  it('relays a 101 in which the upstream chose none of the offered subprotocols (RFC 6455 4.2.2)', async () => {
    up = await startWsUpstream({ protocols: [] });
    px = await startProxy(oneRoute(up.url));
    // The header is set by hand: ws's own client would refuse a 101 without one it offered.
    const ws = await open(wsUrl(px.url), [], { headers: { 'Sec-WebSocket-Protocol': 'chat' } });
    expect(ws.protocol).toBe('');
    expect(up.requests[0]?.headers['sec-websocket-protocol']).toBe('chat');
    ws.send('still works');
    expect(await nextMessage(ws)).toBe('still works');
    ws.terminate();
    expect(await metricValue(px.metricsUrl, 'outrigger_websocket_upgrades_total', { route: 'r1', outcome: 'accepted' })).toBe(1);
  });

  it('relays a refused upgrade as a normal response', async () => {
    up = await startWsUpstream({
      onRequest: (_req, socket) => {
        socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 4\r\nconnection: close\r\n\r\nnope');
        return false;
      },
    });
    px = await startProxy(oneRoute(up.url));
    const err = (await open(wsUrl(px.url)).catch((e: unknown) => e)) as { status: number; body: string };
    expect(err.status).toBe(403);
    expect(err.body).toBe('nope');
    expect(await metricValue(px.metricsUrl, 'outrigger_websocket_upgrades_total', { route: 'r1', outcome: 'upstream_refused' })).toBe(1);
  });

  it('refuses a fake 101 that is not a WebSocket answer', async () => {
    up = await startWsUpstream({
      onRequest: (_req, socket) => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: bogus\r\n\r\n');
        return false;
      },
    });
    px = await startProxy(oneRoute(up.url, { retry: { attempts: 3 } }));
    const err = (await open(wsUrl(px.url)).catch((e: unknown) => e)) as { status: number; body: string };
    expect(err.status).toBe(502);
    expect(JSON.parse(err.body).error.code).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect(up.requests.length).toBe(1); // answered, so never retried
  });

  it('retries a handshake after connection refused, on the next endpoint', async () => {
    up = await startWsUpstream();
    const dead = await refusedPort();
    px = await startProxy(oneRoute([`http://127.0.0.1:${dead}`, up.url]));
    for (let i = 0; i < 2; i++) {
      const ws = await open(wsUrl(px.url));
      ws.send('x');
      expect(await nextMessage(ws)).toBe('x');
      ws.terminate();
    }
  });

  it('rejects upgrades while the breaker is isolated, with the fallback when configured', async () => {
    up = await startWsUpstream();
    px = await startProxy(oneRoute(up.url, { fallback: { on: ['breaker-open'], status: 503, body: 'later' } }));
    await fetch(`${px.adminUrl}/breakers/r1/isolate`, { method: 'POST' });
    const err = (await open(wsUrl(px.url)).catch((e: unknown) => e)) as { status: number; body: string; headers: Record<string, string> };
    expect(err.status).toBe(503);
    expect(err.body).toBe('later');
    expect(err.headers['x-outrigger-fallback']).toBe('breaker-open');
    expect(up.requests.length).toBe(0);
    expect(await metricValue(px.metricsUrl, 'outrigger_websocket_upgrades_total', { route: 'r1', outcome: 'rejected_breaker' })).toBe(1);
  });

  it('closes idle connections and those past maxLifetime', async () => {
    up = await startWsUpstream();
    px = await startProxy({
      upstreams: { up: { endpoints: [up.url] } },
      routes: [
        { name: 'idle', match: { pathPrefix: '/idle' }, upstream: 'up', websocket: { idleTimeout: '200ms' } },
        { name: 'life', match: { pathPrefix: '/life' }, upstream: 'up', websocket: { maxLifetime: '300ms' } },
      ],
    });
    const a = await open(wsUrl(px.url, '/idle'));
    const b = await open(wsUrl(px.url, '/life'));
    const keepBusy = setInterval(() => b.readyState === WebSocket.OPEN && b.send('tick'), 50);
    const [ca, cb] = await Promise.all([closed(a), closed(b)]);
    clearInterval(keepBusy);
    expect(ca.code).toBe(1001);
    expect(cb.code).toBe(1001);
    await until(async () => (await metricValue(px!.metricsUrl, 'outrigger_websocket_closed_total', { route: 'idle', reason: 'idle' })) === 1);
    expect(await metricValue(px.metricsUrl, 'outrigger_websocket_closed_total', { route: 'life', reason: 'lifetime' })).toBe(1);
  });

  it('caps connections per route with 503 OUTRIGGER_OVERLOADED', async () => {
    up = await startWsUpstream();
    px = await startProxy(oneRoute(up.url, { websocket: { maxConnections: 2 } }));
    const a = await open(wsUrl(px.url));
    const b = await open(wsUrl(px.url));
    const err = (await open(wsUrl(px.url)).catch((e: unknown) => e)) as { status: number; body: string };
    expect(err.status).toBe(503);
    expect(JSON.parse(err.body).error.code).toBe('OUTRIGGER_OVERLOADED');
    const c = closed(a);
    a.close();
    await c;
    await until(() => px!.app.state !== undefined && up!.connections.filter((w) => w.readyState === WebSocket.OPEN).length === 1);
    const d = await open(wsUrl(px.url));
    b.terminate();
    d.terminate();
  });

  it('leaks no sockets over 200 open/close cycles from either side', async () => {
    up = await startWsUpstream();
    px = await startProxy(oneRoute(up.url));
    for (let i = 0; i < 200; i++) {
      const ws = await open(wsUrl(px.url));
      ws.send('m');
      await nextMessage(ws);
      const c = closed(ws);
      if (i % 2 === 0) ws.close(1000);
      else {
        const server = up.connections[up.connections.length - 1];
        server?.close(1000);
      }
      await c;
    }
    await until(() => up!.openSockets() === 0, 10_000);
    expect(up.openSockets()).toBe(0);
    await until(async () => (await metricValue(px!.metricsUrl, 'outrigger_websocket_connections', { route: 'r1' })) === 0);
  });

  it('pings the upstream at the configured interval', async () => {
    up = await startWsUpstream();
    px = await startProxy(oneRoute(up.url, { websocket: { ping: '100ms' } }));
    const ws = await open(wsUrl(px.url));
    let clientPongs = 0;
    ws.on('pong', () => clientPongs++);
    await until(() => up!.connections.length === 1);
    let pings = 0;
    up.connections[0]?.on('ping', () => pings++);
    await until(() => pings >= 2, 5000);
    expect(clientPongs).toBe(0); // the upstream's answers to the proxy's pings stop at the proxy
    ws.terminate();
  });
});

describe('websocket handshake hygiene', () => {
  it('refuses an invalid client handshake before dialling the upstream, and frees the slot', async () => {
    up = await startWsUpstream();
    px = await startProxy(oneRoute(up.url, { websocket: { maxConnections: 1 } }));
    const { request } = await import('node:http');
    const u = new URL(px.url);
    const status = await new Promise<number>((resolve, reject) => {
      const r = request({ host: u.hostname, port: u.port, path: '/x', headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'not-a-key' }, agent: false });
      r.once('response', (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      });
      r.once('upgrade', () => resolve(101));
      r.once('error', reject);
      r.end();
    });
    expect(status).toBe(400);
    expect(up.requests.length).toBe(0);
    // The one slot is free again: a valid upgrade goes through.
    const ws = await open(wsUrl(px.url));
    ws.terminate();
  });

  it('does not let its own keep-alive pings hold an idle connection open', async () => {
    up = await startWsUpstream();
    px = await startProxy(oneRoute(up.url, { websocket: { ping: '50ms', idleTimeout: '300ms' } }));
    const ws = await open(wsUrl(px.url));
    const c = await Promise.race([closed(ws), new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    expect(c?.code).toBe(1001);
  });
});
