import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';

let px: TestProxy | undefined;
let up: Server | undefined;
const upSockets = new Set<Socket>();
afterEach(async () => {
  await px?.close();
  for (const s of upSockets) s.destroy();
  await new Promise<void>((r) => (up ? up.close(() => r()) : r()));
  px = up = undefined;
});

/** An upstream speaking a made-up protocol over Upgrade: it echoes bytes after its 101. */
async function echoUpstream(answerAs = 'x-echo'): Promise<string> {
  up = createServer((_req, res) => {
    res.writeHead(426, { 'content-type': 'text/plain' });
    res.end('upgrade required');
  });
  up.on('connection', (s: Socket) => {
    upSockets.add(s);
    s.on('close', () => upSockets.delete(s));
  });
  up.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: ${answerAs}\r\n\r\n`);
    socket.pipe(socket);
  });
  await new Promise<void>((r) => up!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(up.address() as AddressInfo).port}`;
}

function upgrade(base: string, protocol: string): Promise<{ status: number; socket?: Socket; body?: string }> {
  const u = new URL(base);
  return new Promise((resolve, reject) => {
    const r = request({ host: u.hostname, port: u.port, path: '/t', headers: { connection: 'Upgrade', upgrade: protocol }, agent: false });
    r.once('upgrade', (res, socket) => resolve({ status: res.statusCode ?? 0, socket }));
    r.once('response', (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    r.once('error', reject);
    r.end();
  });
}

describe('non-WebSocket upgrades', () => {
  it('are refused with 400 unless the route lists them', async () => {
    px = await startProxy(oneRoute(await echoUpstream()));
    const r = await upgrade(px.url, 'x-echo');
    expect(r.status).toBe(400);
    expect(JSON.parse(r.body ?? '{}').error.code).toBe('OUTRIGGER_BAD_REQUEST');
  });

  it('are tunnelled byte for byte after a 101 for the same protocol when the route lists them', async () => {
    px = await startProxy(oneRoute(await echoUpstream(), { upgrades: ['websocket', 'x-echo'] }));
    const r = await upgrade(px.url, 'x-echo');
    expect(r.status).toBe(101);
    const socket = r.socket as Socket;
    const echoed = new Promise<string>((resolve) => socket.once('data', (d: Buffer) => resolve(d.toString())));
    socket.write('ping-123');
    expect(await echoed).toBe('ping-123');
    socket.destroy();
  });

  it('refuse a 101 for another protocol with 502', async () => {
    px = await startProxy(oneRoute(await echoUpstream('something-else'), { upgrades: ['x-echo'] }));
    const r = await upgrade(px.url, 'x-echo');
    expect(r.status).toBe(502);
    expect(JSON.parse(r.body ?? '{}').error.code).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
  });
});

describe('non-WebSocket upgrade answers', () => {
  it('a relayed non-101 answer whose client leaves mid-body frees the slot', async () => {
    up = createServer();
    up.on('connection', (s: Socket) => {
      upSockets.add(s);
      s.on('close', () => upSockets.delete(s));
    });
    up.on('upgrade', (_req: IncomingMessage, socket: Socket) => {
      socket.write('HTTP/1.1 426 Upgrade Required\r\ncontent-length: 100000\r\n\r\npartial');
    });
    await new Promise<void>((r) => up!.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(up.address() as AddressInfo).port}`;
    px = await startProxy(oneRoute(base, { upgrades: ['x-echo'], websocket: { maxConnections: 1 } }));
    const u = new URL(px.url);
    await new Promise<void>((resolve, reject) => {
      const r = request({ host: u.hostname, port: u.port, path: '/t', headers: { connection: 'Upgrade', upgrade: 'x-echo' }, agent: false });
      r.once('response', (res) => {
        expect(res.statusCode).toBe(426);
        res.once('data', () => {
          r.destroy();
          resolve();
        });
      });
      r.once('error', () => undefined);
      r.end();
      setTimeout(() => reject(new Error('no answer')), 5000);
    });
    // Once the client is gone the slot is released: the next upgrade is answered, not 503.
    let status = 0;
    for (let i = 0; i < 50 && status !== 426; i++) {
      status = await new Promise<number>((resolve) => {
        const r = request({ host: u.hostname, port: u.port, path: '/t', headers: { connection: 'Upgrade', upgrade: 'x-echo' }, agent: false });
        r.once('response', (res) => {
          resolve(res.statusCode ?? 0);
          r.destroy();
        });
        r.once('error', () => resolve(0));
        r.end();
      });
      if (status !== 426) await new Promise((r) => setTimeout(r, 50));
    }
    expect(status).toBe(426);
  });
});
