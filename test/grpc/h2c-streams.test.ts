// http2.maxConcurrentStreams on the proxy port: the SETTINGS an h2c client receives (the
// default and a configured value), a node:http2 client kept to it end to end, and a raw
// client that ignores it refused past the limit.
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { connect as netConnect, type Socket } from 'node:net';
import type { ServerResponse } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { waitFor } from '../helpers/wait.js';

let up: TestUpstream | undefined;
let px: TestProxy | undefined;
let session: ClientHttp2Session | undefined;
let raw: Socket | undefined;
afterEach(async () => {
  raw?.destroy();
  session?.destroy();
  await px?.close();
  await up?.close();
  px = up = session = raw = undefined;
});

function remoteSettings(s: ClientHttp2Session): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no SETTINGS from the proxy within 5s')), 5000);
    s.once('remoteSettings', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

/** An upstream that holds every response until release() is called, counting the held ones. */
async function holdingUpstream(): Promise<{ held: ServerResponse[]; peak: () => number; releaseOne: () => void }> {
  const held: ServerResponse[] = [];
  let peak = 0;
  up = await startUpstream((_rq, res) => {
    held.push(res);
    peak = Math.max(peak, held.filter((r) => !r.writableEnded).length);
  });
  return {
    held,
    peak: () => peak,
    releaseOne: () => {
      const r = held.find((x) => !x.writableEnded);
      r?.writeHead(200, { 'content-type': 'text/plain' });
      r?.end('ok');
    },
  };
}

/** One HTTP/2 frame: length, type, flags, stream id, payload (RFC 9113 4.1). */
function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
}

interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
}

describe('http2.maxConcurrentStreams', () => {
  it('announces 100 by default', async () => {
    up = await startUpstream();
    px = await startProxy(oneRoute(up.url));
    session = connect(px.url);
    await remoteSettings(session);
    expect(session.remoteSettings.maxConcurrentStreams).toBe(100);
    expect(session.remoteSettings.enablePush).toBe(false);
  });

  it('a node:http2 client kept to the announced limit: no more streams reach the upstream at once, and all complete', async () => {
    const hold = await holdingUpstream();
    px = await startProxy(oneRoute(up?.url as string, { timeout: '20s' }, { http2: { maxConcurrentStreams: 2 } }));
    session = connect(px.url);
    await remoteSettings(session);
    expect(session.remoteSettings.maxConcurrentStreams).toBe(2);
    const s = session;
    const calls = [0, 1, 2, 3].map(
      (i) =>
        new Promise<{ status: number; body: string }>((resolve, reject) => {
          const st = s.request({ ':method': 'GET', ':path': `/c${i}` });
          let head: IncomingHttpHeaders = {};
          let body = '';
          st.on('response', (h) => (head = h));
          st.on('data', (c: Buffer) => (body += c.toString()));
          st.on('end', () => resolve({ status: Number(head[':status']), body }));
          st.on('error', reject);
        }),
    );
    await waitFor(() => hold.held.length >= 2, { timeout: 5000, what: 'two requests upstream' });
    // The other two wait in the client for a slot.
    await new Promise((r) => setTimeout(r, 200));
    expect(hold.held).toHaveLength(2);
    for (let n = 3; n <= 4; n++) {
      hold.releaseOne();
      await waitFor(() => hold.held.length >= n, { timeout: 5000, what: `request ${n} upstream` });
    }
    hold.releaseOne();
    hold.releaseOne();
    const res = await Promise.all(calls);
    expect(res.every((r) => r.status === 200 && r.body === 'ok')).toBe(true);
    expect(hold.peak()).toBe(2);
  });

  it('a client that ignores the limit has the stream past it refused, and it never reaches the upstream', async () => {
    const hold = await holdingUpstream();
    px = await startProxy(oneRoute(up?.url as string, { timeout: '20s' }, { http2: { maxConcurrentStreams: 2 } }));
    const port = px.app.proxy.port;
    const frames: Frame[] = [];
      raw = netConnect(port, '127.0.0.1');
    const sock = raw;
    let buf = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 9) {
        const len = buf.readUIntBE(0, 3);
        if (buf.length < 9 + len) break;
        const f = { type: buf[3] as number, flags: buf[4] as number, stream: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) };
        buf = buf.subarray(9 + len);
        frames.push(f);
        // ACK the proxy's SETTINGS, as a client must.
        if (f.type === 4 && (f.flags & 1) === 0) sock.write(frame(4, 1, 0));
      }
    });
    sock.on('error', () => {});
    await new Promise<void>((r) => sock.once('connect', () => r()));
    sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), frame(4, 0, 0)]));
    // The limit is in force once the proxy has our ACK of its SETTINGS: wait for its ACK of
    // ours, which comes after it read our ACK (frames are read in order).
    const settings = await waitFor(() => frames.find((f) => f.type === 4 && (f.flags & 1) === 0), { timeout: 5000, what: 'the proxy SETTINGS' });
    let announced = -1;
    for (let i = 0; i + 6 <= settings.payload.length; i += 6) if (settings.payload.readUInt16BE(i) === 3) announced = settings.payload.readUInt32BE(i + 2);
    expect(announced).toBe(2);
    await waitFor(() => frames.some((f) => f.type === 4 && (f.flags & 1) === 1), { timeout: 5000, what: 'the SETTINGS ACK' });
    // PING round trip so the proxy has read our SETTINGS ACK before the HEADERS go out.
    sock.write(frame(6, 0, 0, Buffer.alloc(8)));
    await waitFor(() => frames.some((f) => f.type === 6 && (f.flags & 1) === 1), { timeout: 5000, what: 'the PING ACK' });
    // GET / with :authority a.local, HPACK: indexed :method GET, :path /, :scheme http, and
    // :authority as a literal without indexing (name index 1).
    const block = Buffer.concat([Buffer.from([0x82, 0x84, 0x86, 0x01, 7]), Buffer.from('a.local')]);
    for (const id of [1, 3]) sock.write(frame(1, 0x05, id, block));
    await waitFor(() => hold.held.length >= 2, { timeout: 5000, what: 'two requests upstream' });
    sock.write(frame(1, 0x05, 5, block));
    // Stream 5 is over the limit the client acknowledged. nghttp2 answers with a GOAWAY that
    // accepts up to stream 3, PROTOCOL_ERROR (1); node then tears the session down itself
    // (onSessionInternalError), and when that wins the race the GOAWAY says INTERNAL_ERROR
    // (2), after RST_STREAMs of the open streams. An RST_STREAM REFUSED_STREAM (7) on stream
    // 5 alone is what RFC 9113 5.1.2 also allows.
    const answer = await waitFor(() => frames.find((f) => (f.type === 3 && f.stream === 5) || f.type === 7), { timeout: 5000, what: 'the proxy to refuse stream 5' });
    if (answer.type === 7) {
      expect(answer.payload.readUInt32BE(0) & 0x7fffffff).toBe(3);
      expect([1, 2]).toContain(answer.payload.readUInt32BE(4));
    } else expect(answer.payload.readUInt32BE(0)).toBe(7);
    // No response to stream 5, and the upstream never saw it.
    expect(frames.some((f) => f.type === 1 && f.stream === 5)).toBe(false);
    await new Promise((r) => setTimeout(r, 100));
    expect(hold.held).toHaveLength(2);
  });
});
