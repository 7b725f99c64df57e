// Real @grpc/grpc-js peers over the proxy: an h2c client (insecure credentials) to the proxy
// port, and an h2c upstream (protocol: h2c).
import { fileURLToPath } from 'node:url';
import { connect } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy, metricValue, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const PROTO = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url));
const def = loader.loadSync(PROTO, { keepCase: true, defaults: true });
const pkg = grpc.loadPackageDefinition(def) as any;
const Echo = pkg.outrigger.test.Echo;

interface Msg {
  text: string;
  n: number;
}

let server: grpc.Server | undefined;
let px: TestProxy | undefined;
const clients: grpc.Client[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  await px?.close();
  if (server) await new Promise<void>((r) => server?.tryShutdown(() => r()));
  server?.forceShutdown();
  px = server = undefined;
});

async function startServer(impl: Record<string, (...args: any[]) => void>): Promise<string> {
  server = new grpc.Server();
  server.addService(Echo.service, impl);
  const port = await new Promise<number>((resolve, reject) => server?.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  return `http://127.0.0.1:${port}`;
}

function proxyCfg(upstream: string, route: Record<string, unknown> = {}, protocol = 'h2c'): Record<string, unknown> {
  return {
    log: { accessLog: true },
    upstreams: { up: { endpoints: [upstream], protocol } },
    routes: [{ name: 'g', match: { pathPrefix: '/' }, upstream: 'up', grpc: protocol !== 'http1', ...route }],
  };
}

function client(): any {
  const c = new Echo(`127.0.0.1:${px?.app.proxy.port}`, grpc.credentials.createInsecure());
  clients.push(c);
  return c;
}

function unary(c: any, msg: Msg, md = new grpc.Metadata(), opts: grpc.CallOptions = {}): Promise<{ err: grpc.ServiceError | null; res?: Msg; trailers?: grpc.Metadata; headers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let headers: grpc.Metadata | undefined;
    let trailers: grpc.Metadata | undefined;
    const call = c.Unary(msg, md, opts, (err: grpc.ServiceError | null, res: Msg) => setImmediate(() => resolve({ err, res, headers, trailers })));
    call.on('metadata', (m: grpc.Metadata) => (headers = m));
    call.on('status', (s: grpc.StatusObject) => (trailers = s.metadata));
  });
}

const echoImpl = {
  Unary(call: any, cb: any) {
    const md = new grpc.Metadata();
    md.set('x-echo-head', String(call.metadata.get('x-client')[0] ?? ''));
    call.sendMetadata(md);
    const tr = new grpc.Metadata();
    tr.set('x-echo-trailer', 'bye');
    cb(null, { text: `u:${call.request.text}`, n: call.request.n + 1 }, tr);
  },
  ServerStream(call: any) {
    for (let i = 0; i < call.request.n; i++) call.write({ text: `s${i}`, n: i });
    call.end();
  },
  ClientStream(call: any, cb: any) {
    const got: string[] = [];
    call.on('data', (m: Msg) => got.push(m.text));
    call.on('end', () => cb(null, { text: got.join(','), n: got.length }));
  },
  Bidi(call: any) {
    call.on('data', (m: Msg) => call.write({ text: `b:${m.text}`, n: m.n }));
    call.on('end', () => call.end());
  },
};

describe('gRPC through the proxy (grpc-js client and server, h2c both sides)', () => {
  it('carries unary, server-streaming, client-streaming and bidi calls, with metadata and trailers intact', async () => {
    const up = await startServer(echoImpl);
    px = await startProxy(proxyCfg(up));
    const c = client();
    const md = new grpc.Metadata();
    md.set('x-client', 'me');
    const u = await unary(c, { text: 'hi', n: 1 }, md);
    expect(u.err).toBeNull();
    expect(u.res).toEqual({ text: 'u:hi', n: 2 });
    expect(u.headers?.get('x-echo-head')).toEqual(['me']);
    expect(u.trailers?.get('x-echo-trailer')).toEqual(['bye']);

    const ss: Msg[] = await new Promise((resolve, reject) => {
      const out: Msg[] = [];
      const call = c.ServerStream({ text: '', n: 3 });
      call.on('data', (m: Msg) => out.push(m));
      call.on('end', () => resolve(out));
      call.on('error', reject);
    });
    expect(ss.map((m) => m.text)).toEqual(['s0', 's1', 's2']);

    const cs: Msg = await new Promise((resolve, reject) => {
      const call = c.ClientStream((err: Error | null, res: Msg) => (err ? reject(err) : resolve(res)));
      for (const t of ['a', 'b', 'c']) call.write({ text: t, n: 0 });
      call.end();
    });
    expect(cs).toEqual({ text: 'a,b,c', n: 3 });

    const bidi: string[] = await new Promise((resolve, reject) => {
      const out: string[] = [];
      const call = c.Bidi();
      call.on('data', (m: Msg) => {
        out.push(m.text);
        if (out.length < 3) call.write({ text: `m${out.length}`, n: out.length });
        else call.end();
      });
      call.on('end', () => resolve(out));
      call.on('error', reject);
      call.write({ text: 'm0', n: 0 });
    });
    expect(bidi).toEqual(['b:m0', 'b:m1', 'b:m2']);

    const access = px.logs.filter((l) => l.access === true);
    expect(access.length).toBe(4);
    expect(access.every((l) => l.protocol === 'h2c' && l.grpcStatus === 0)).toBe(true);
    expect(await metricValue(px.metricsUrl, 'outrigger_grpc_responses_total', { route: 'g', grpc_status: '0' })).toBe(4);
    expect(await metricValue(px.metricsUrl, 'outrigger_grpc_responses_total', { route: 'g', grpc_status: '14' })).toBe(0);
  });

  it('a client cancel reaches the server as a cancelled call', async () => {
    let cancelledAt = 0;
    let started = 0;
    const up = await startServer({
      ...echoImpl,
      ServerStream(call: any) {
        started = performance.now();
        call.write({ text: 'first', n: 0 });
        call.on('cancelled', () => (cancelledAt = performance.now()));
      },
    });
    px = await startProxy(proxyCfg(up));
    const c = client();
    const call = c.ServerStream({ text: '', n: 1 });
    call.on('error', () => {});
    await new Promise<void>((r) => call.once('data', () => r()));
    const t0 = performance.now();
    call.cancel();
    await waitFor(() => cancelledAt > 0, { timeout: 3000, what: 'the server to see the cancel' });
    const ms = cancelledAt - t0;
    console.log(`cancel propagated to the upstream server in ${ms.toFixed(1)} ms`);
    expect(started).toBeGreaterThan(0);
    expect(ms).toBeLessThan(1000);
  });

  it('a server stream quiet for longer than bodyTimeout is cut (INTERNAL), one that keeps talking is not', async () => {
    let cancelled = false;
    const up = await startServer({
      ...echoImpl,
      ServerStream(call: any) {
        call.on('cancelled', () => (cancelled = true));
        if (call.request.text === 'quiet') {
          call.write({ text: 'first', n: 0 });
          return; // then nothing
        }
        let i = 0;
        const t = setInterval(() => {
          if (call.cancelled) return clearInterval(t);
          call.write({ text: `s${i}`, n: i });
          if (++i === 6) {
            clearInterval(t);
            call.end();
          }
        }, 100);
      },
    });
    px = await startProxy(proxyCfg(up, { bodyTimeout: '300ms' }));
    const c = client();
    const run = (text: string) =>
      new Promise<{ got: string[]; err: grpc.ServiceError | null }>((resolve) => {
        const got: string[] = [];
        const call = c.ServerStream({ text, n: 0 });
        call.on('data', (m: Msg) => got.push(m.text));
        call.on('error', (err: grpc.ServiceError) => resolve({ got, err }));
        call.on('end', () => setImmediate(() => resolve({ got, err: null })));
      });
    const [quiet, talking] = await Promise.all([run('quiet'), run('talk')]);
    expect(quiet.got).toEqual(['first']);
    expect(quiet.err?.code).toBe(grpc.status.INTERNAL);
    expect(talking).toEqual({ got: ['s0', 's1', 's2', 's3', 's4', 's5'], err: null });
    await waitFor(() => cancelled, { timeout: 3000, what: 'the quiet call to be cancelled upstream' });
    expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'g', kind: 'body' })).toBe(1);
  });

  it('retries UNAVAILABLE trailers-only (the server sees two calls), not once a message was streamed', async () => {
    let calls = 0;
    let streams = 0;
    const up = await startServer({
      ...echoImpl,
      Unary(call: any, cb: any) {
        calls++;
        if (calls === 1) cb({ code: grpc.status.UNAVAILABLE, details: 'try again' });
        else cb(null, { text: 'second', n: calls });
      },
      ServerStream(call: any) {
        streams++;
        call.write({ text: 'one', n: 0 });
        call.emit('error', { code: grpc.status.UNAVAILABLE, details: 'after a message' });
      },
    });
    px = await startProxy(proxyCfg(up, { retry: { on: ['unavailable'], attempts: 2, backoff: { base: '1ms', max: '2ms' } } }));
    const c = client();
    const u = await unary(c, { text: 'x', n: 0 });
    expect(u.err).toBeNull();
    expect(u.res?.text).toBe('second');
    expect(calls).toBe(2);

    const err: grpc.ServiceError = await new Promise((resolve) => {
      const call = c.ServerStream({ text: '', n: 1 });
      call.on('data', () => {});
      call.on('error', resolve);
    });
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
    expect(streams).toBe(1);
  });

  it('the breaker opens on UNAVAILABLE and fails fast with UNAVAILABLE', async () => {
    let calls = 0;
    const up = await startServer({
      ...echoImpl,
      Unary(_call: any, cb: any) {
        calls++;
        cb({ code: grpc.status.UNAVAILABLE, details: 'down' });
      },
    });
    px = await startProxy(proxyCfg(up, { retry: { attempts: 0 }, breaker: { failOn: ['unavailable'], consecutiveFailures: 2, halfOpenAfter: '30s' } }));
    const c = client();
    for (let i = 0; i < 2; i++) expect((await unary(c, { text: '', n: 0 })).err?.code).toBe(grpc.status.UNAVAILABLE);
    const r = await unary(c, { text: '', n: 0 });
    expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.err?.metadata.get('x-outrigger-error')).toEqual(['OUTRIGGER_BREAKER_OPEN']);
    expect(calls).toBe(2);
  });

  it('grpc-timeout shorter than the route timeout wins, and the upstream gets the time left', async () => {
    let seenLeft = -1;
    const up = await startServer({
      ...echoImpl,
      Unary(call: any) {
        const d = call.getDeadline();
        seenLeft = d instanceof Date ? d.getTime() - Date.now() : typeof d === 'number' && Number.isFinite(d) ? d - Date.now() : Infinity;
        // never answers
      },
    });
    px = await startProxy(proxyCfg(up, { timeout: '10s', retry: { attempts: 0 } }));
    // A raw HTTP/2 client, so the deadline enforced is the proxy's, not grpc-js's own.
    const s = connect(px.url);
    const t0 = performance.now();
    const head: Record<string, unknown> = await new Promise((resolve, reject) => {
      const st = s.request({ ':method': 'POST', ':path': '/outrigger.test.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '300m' });
      st.on('response', (h) => resolve(h));
      st.on('error', reject);
      st.end(Buffer.from([0, 0, 0, 0, 0]));
    });
    const took = performance.now() - t0;
    s.destroy();
    expect(head[':status']).toBe(200);
    expect(head['grpc-status']).toBe('4');
    expect(head['x-outrigger-error']).toBe('OUTRIGGER_TIMEOUT');
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(3000);
    // The server got a grpc-timeout of the time left (not the route's 10s).
    expect(seenLeft).toBeGreaterThan(0);
    expect(seenLeft).toBeLessThanOrEqual(300);
  });

  it('each proxy-made error reads as the documented status in grpc-js', async () => {
    const up = await startServer({
      ...echoImpl,
      Unary() {
        /* never answers */
      },
    });
    px = await startProxy({
      upstreams: { up: { endpoints: [up], protocol: 'h2c' }, dead: { endpoints: ['http://127.0.0.1:1'], protocol: 'h2c' }, old: { endpoints: [up] } },
      routes: [
        { name: 'slow', match: { path: '/outrigger.test.Echo/Unary', headers: { 'x-case': 'timeout' } }, upstream: 'up', timeout: '200ms', retry: { attempts: 0 } },
        { name: 'down', match: { pathPrefix: '/', headers: { 'x-case': 'down' } }, upstream: 'dead', retry: { attempts: 0 } },
        { name: 'h1', match: { pathPrefix: '/', headers: { 'x-case': 'h1' } }, upstream: 'old' },
        { name: 'busy', match: { pathPrefix: '/', headers: { 'x-case': 'busy' } }, upstream: 'up', concurrency: { max: 1 }, timeout: '2s', retry: { attempts: 0 } },
      ],
    });
    const c = client();
    const call = async (kase: string) => {
      const md = new grpc.Metadata();
      md.set('x-case', kase);
      return (await unary(c, { text: '', n: 0 }, md)).err;
    };
    const timeout = await call('timeout');
    expect([timeout?.code, timeout?.metadata.get('x-outrigger-error')[0]]).toEqual([grpc.status.DEADLINE_EXCEEDED, 'OUTRIGGER_TIMEOUT']);
    const down = await call('down');
    expect([down?.code, down?.metadata.get('x-outrigger-error')[0]]).toEqual([grpc.status.UNAVAILABLE, 'OUTRIGGER_UPSTREAM_UNAVAILABLE']);
    const h1 = await call('h1');
    expect([h1?.code, h1?.metadata.get('x-outrigger-error')[0]]).toEqual([grpc.status.UNIMPLEMENTED, 'OUTRIGGER_GRPC_UPSTREAM_HTTP1']);
    expect(h1?.details).toMatch(/protocol http1/);
    const none = await call('nothing-matches');
    expect([none?.code, none?.metadata.get('x-outrigger-error')[0]]).toEqual([grpc.status.UNIMPLEMENTED, 'OUTRIGGER_NO_ROUTE']);
    // One call holds the only slot (the upstream never answers), the next is refused.
    const held = call('busy');
    await waitFor(() => (px?.app.state.inflight ?? 0) >= 1, { timeout: 2000, what: 'the first call in flight' });
    const busy = await call('busy');
    expect([busy?.code, busy?.metadata.get('x-outrigger-error')[0]]).toEqual([grpc.status.RESOURCE_EXHAUSTED, 'OUTRIGGER_OVERLOADED']);
    await held;
  });

  it('fallback.grpc answers a gRPC call trailers-only', async () => {
    px = await startProxy(proxyCfg('http://127.0.0.1:1', { retry: { attempts: 0 }, fallback: { on: ['upstream-unavailable'], grpc: { status: 14, message: 'try later, ünïcode' } } }));
    const r = await unary(client(), { text: '', n: 0 });
    expect(r.err?.code).toBe(grpc.status.UNAVAILABLE);
    expect(r.err?.details).toBe('try later, ünïcode');
    expect(r.err?.metadata.get('x-outrigger-fallback')).toEqual(['upstream-unavailable']);
  });

  it('an HTTP/1.1 client reaches an h2c upstream, trailers as chunked trailers', async () => {
    const { createServer } = await import('node:http2');
    const h2up = createServer((rq, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.write(`${rq.method} ${rq.url} ${String(rq.headers[':authority'])}`);
      res.addTrailers({ 'x-sum': '42' });
      res.end();
    });
    await new Promise<void>((r) => h2up.listen(0, '127.0.0.1', () => r()));
    try {
      const port = (h2up.address() as { port: number }).port;
      px = await startProxy(proxyCfg(`http://127.0.0.1:${port}`, { grpc: false }));
      const trailers: Record<string, string> = {};
      const { request } = await import('node:http');
      const body: string = await new Promise((resolve, reject) => {
        const r = request({ host: '127.0.0.1', port: px?.app.proxy.port, path: '/p?q=1', headers: { te: 'trailers' } }, (res) => {
          let b = '';
          res.on('data', (c: Buffer) => (b += c.toString()));
          res.on('end', () => {
            Object.assign(trailers, res.trailers);
            resolve(b);
          });
        });
        r.on('error', reject);
        r.end();
      });
      expect(body).toBe(`GET /p?q=1 127.0.0.1:${port}`);
      expect(trailers['x-sum']).toBe('42');
      const plain = await req(px.url, { path: '/again' });
      expect(plain.status).toBe(200);
    } finally {
      h2up.close();
    }
  });
});
