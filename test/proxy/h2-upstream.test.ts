// HTTP/2 upstreams (protocol h2c) against a real node:http2 server: the session per
// endpoint is replaced after a GOAWAY, reaped once idle for keepAliveTimeout (never while a
// stream is open), and an upstream reset after the response head and part of the body
// reaches the client as a reset stream (HTTP/2) or a cut connection (HTTP/1.1), counted in
// outrigger_responses_truncated_total. Request trailers reach the upstream, bodyTimeout
// bounds an idle stream, maxConnections caps the sessions opened when the peer's stream
// limit is reached, the stale-if-error cache keeps HTTP/2 answers, and a half-open probe is
// bounded by breaker.probeTimeout as on HTTP/1.1.
import { connect, constants, createServer, type ClientHttp2Session, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream, type Settings } from 'node:http2';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { breakerState, metricValue, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { sleep, waitFor } from '../helpers/wait.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_CANCEL } = constants;

interface SeenStream {
  /** Index of the upstream session (in order of arrival) the stream came on. */
  session: number;
  method: string;
  path: string;
  body: string;
  /** The request's trailers, if it sent any. */
  trailers: IncomingHttpHeaders | null;
  stream: ServerHttp2Stream;
}

interface H2Upstream {
  url: string;
  sessions: ServerHttp2Session[];
  /** When each session closed (performance.now()), by index. */
  closedAt: Map<number, number>;
  seen: SeenStream[];
  close(): Promise<void>;
}

type H2Handler = (s: SeenStream) => void;

/** A node:http2 h2c server; the handler runs once the request body has been read. */
async function startH2(handler: H2Handler, settings: Settings = {}): Promise<H2Upstream> {
  const sessions: ServerHttp2Session[] = [];
  const closedAt = new Map<number, number>();
  const seen: SeenStream[] = [];
  const server: Http2Server = createServer({ settings });
  server.on('session', (s: ServerHttp2Session) => {
    const i = sessions.push(s) - 1;
    s.once('close', () => closedAt.set(i, performance.now()));
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    const session = sessions.indexOf(stream.session as ServerHttp2Session);
    const chunks: Buffer[] = [];
    let trailers: IncomingHttpHeaders | null = null;
    stream.on('error', () => {});
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('trailers', (t: IncomingHttpHeaders) => (trailers = t));
    stream.on('end', () => {
      const s: SeenStream = { session, method: String(headers[':method']), path: String(headers[':path']), body: Buffer.concat(chunks).toString(), trailers, stream };
      seen.push(s);
      handler(s);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    sessions,
    closedAt,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sessions) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Answers 200 with a body naming the session the request came on. */
function answer(s: SeenStream, extra = ''): void {
  if (s.stream.destroyed) return;
  s.stream.respond({ ':status': 200, 'content-type': 'text/plain' });
  s.stream.end(`session ${s.session} ${s.method} ${s.path}${extra}`);
}

function h2cfg(upstream: string, upstreamExtra: Record<string, unknown> = {}, route: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    upstreams: { up: { endpoints: [upstream], protocol: 'h2c', ...upstreamExtra } },
    routes: [{ name: 'h2', match: { pathPrefix: '/' }, upstream: 'up', retry: { backoff: { base: '1ms', max: '5ms' } }, ...route }],
  };
}

/** A PING round trip: once it is back, the peer has processed every frame sent before it. */
function ping(s: ServerHttp2Session): Promise<void> {
  return new Promise((resolve, reject) => s.ping((err) => (err ? reject(err) : resolve())));
}

let up: H2Upstream | undefined;
let px: TestProxy | undefined;
let client: ClientHttp2Session | undefined;
afterEach(async () => {
  client?.destroy();
  await px?.close();
  await up?.close();
  client = px = up = undefined;
});

describe('h2c upstream sessions', () => {
  it('after a GOAWAY the accepted stream finishes on the old session and new requests open a new one', async () => {
    up = await startH2((s) => {
      if (s.path !== '/held') answer(s);
    });
    px = await startProxy(h2cfg(up.url));
    const held = req(px.url, { path: '/held' });
    const first = await waitFor(() => up?.seen.find((s) => s.path === '/held'), { timeout: 5000, what: 'the held request upstream' });
    const old = up.sessions[0] as ServerHttp2Session;
    // A graceful GOAWAY that keeps the held stream (its id is the last one accepted).
    old.goaway(NGHTTP2_NO_ERROR, first.stream.id);
    await ping(old);

    const next = await req(px.url, { path: '/next' });
    expect(next.status).toBe(200);
    expect(next.body).toBe('session 1 GET /next');
    // Not sent on the going-away session and refused: the first try went to the new one.
    expect(next.headers['x-outrigger-attempts']).toBe('1');

    answer(first, ' done');
    const r = await held;
    expect(r.status).toBe(200);
    expect(r.complete).toBe(true);
    expect(r.body).toBe('session 0 GET /held done');
    // The proxy closes the old session once its last stream is done.
    await waitFor(() => up?.closedAt.has(0), { timeout: 5000, what: 'the old session to close' });
    expect(up.sessions).toHaveLength(2);
    expect(up.closedAt.has(1)).toBe(false);
  });

  it('a stream past the GOAWAY last-stream-id is refused and retried on a new session, even a POST', async () => {
    let firstId = 0;
    up = await startH2((s) => {
      if (s.session !== 0) return answer(s, ` ${s.body}`);
      if (s.path === '/a') firstId = s.stream.id ?? 0;
      const both = up?.seen.filter((x) => x.session === 0) ?? [];
      if (both.length < 2) return;
      // Both streams are open on the first session: accept /a only, then answer it.
      s.stream.session?.goaway(NGHTTP2_NO_ERROR, firstId);
      const a = both.find((x) => x.path === '/a') as SeenStream;
      setTimeout(() => answer(a, ` ${a.body}`), 20);
    });
    px = await startProxy(h2cfg(up.url));
    const post = (path: string) => req(px?.url as string, { method: 'POST', path, body: `payload${path}`, headers: { 'content-type': 'text/plain' } });
    const a = post('/a');
    await waitFor(() => up?.seen.some((s) => s.path === '/a'), { timeout: 5000, what: '/a upstream' });
    const [ra, rb] = await Promise.all([a, post('/b')]);
    expect(ra.status).toBe(200);
    expect(ra.body).toBe('session 0 POST /a payload/a');
    expect(ra.headers['x-outrigger-attempts']).toBe('1');
    // POST is not in retry.methods, but a refused stream provably never reached the upstream.
    expect(rb.status).toBe(200);
    expect(rb.body).toBe('session 1 POST /b payload/b');
    expect(rb.headers['x-outrigger-attempts']).toBe('2');
    expect(up.seen.map((s) => [s.session, s.path])).toEqual([
      [0, '/a'],
      [0, '/b'],
      [1, '/b'],
    ]);
  });

  it('a GOAWAY with an error code tears the session down: the stream in flight is retried on a new one', async () => {
    up = await startH2((s) => {
      if (s.session === 0) s.stream.session?.goaway(NGHTTP2_ENHANCE_YOUR_CALM, s.stream.id);
      else answer(s);
    });
    px = await startProxy(h2cfg(up.url));
    const r = await req(px.url, { path: '/calm' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('session 1 GET /calm');
    expect(r.headers['x-outrigger-attempts']).toBe('2');
    await waitFor(() => up?.closedAt.has(0), { timeout: 5000, what: 'the torn-down session to close' });
    expect(px.logs.some((l) => l.level === 'error' || l.level === 'fatal')).toBe(false);
  });

  it('a session the upstream closes outright is replaced on the next request', async () => {
    up = await startH2((s) => answer(s));
    px = await startProxy(h2cfg(up.url));
    expect((await req(px.url, { path: '/a' })).body).toBe('session 0 GET /a');
    up.sessions[0]?.destroy();
    await waitFor(() => up?.closedAt.has(0), { timeout: 5000, what: 'the upstream session to close' });
    await sleep(50);
    const r = await req(px.url, { path: '/b' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('session 1 GET /b');
  });

  it('an idle session is closed after keepAliveTimeout, and the next request opens a new one', async () => {
    up = await startH2((s) => answer(s));
    px = await startProxy(h2cfg(up.url, { keepAliveTimeout: '300ms' }));
    expect((await req(px.url, { path: '/a' })).body).toBe('session 0 GET /a');
    const done = performance.now();
    await waitFor(() => up?.closedAt.has(0), { timeout: 10_000, what: 'the idle session to be reaped' });
    const idle = (up.closedAt.get(0) as number) - done;
    // Never before the idle time (some slack for timer granularity).
    expect(idle).toBeGreaterThanOrEqual(250);
    const r = await req(px.url, { path: '/b' });
    expect(r.body).toBe('session 1 GET /b');
  });

  it('a session with a stream open longer than keepAliveTimeout is kept, and reaped once idle afterwards', async () => {
    let answeredAt = 0;
    up = await startH2((s) => {
      // No frame at all for 900ms, three times the idle time, then the answer.
      if (s.path === '/slow')
        setTimeout(() => {
          answeredAt = performance.now();
          answer(s);
        }, 900);
      else answer(s);
    });
    px = await startProxy(h2cfg(up.url, { keepAliveTimeout: '300ms' }, { timeout: '10s' }));
    const r = await req(px.url, { path: '/slow' });
    expect(r.status).toBe(200);
    expect(r.complete).toBe(true);
    expect(r.body).toBe('session 0 GET /slow');
    // Not reaped while the stream was open.
    expect(up.closedAt.get(0) ?? Infinity).toBeGreaterThan(answeredAt);
    // The idle timer fired once while the stream was open; it must still reap the session now.
    await waitFor(() => up?.closedAt.has(0), { timeout: 10_000, what: 'the session to be reaped after its stream ended' });
    expect((await req(px.url, { path: '/b' })).body).toBe('session 1 GET /b');
  });
});

describe('an upstream reset mid-body', () => {
  /**
   * Head and part of the body, then RST_STREAM INTERNAL_ERROR once the client has the part.
   * destroy(err), not close(code): node's close() on a stream still writing ends it first,
   * so the peer gets END_STREAM (a clean end) instead of the reset.
   */
  async function resetting(): Promise<{ cut: () => void }> {
    let pending: ServerHttp2Stream | null = null;
    up = await startH2((s) => {
      s.stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      s.stream.write('partial-');
      pending = s.stream;
    });
    return {
      cut: () => {
        const st = pending;
        pending = null;
        st?.destroy(new Error('upstream reset'));
      },
    };
  }

  it('a reset after the head but before any body byte is the proxy’s 502 OUTRIGGER_UPSTREAM_RESET, not a truncation', async () => {
    up = await startH2((s) => {
      s.stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      setTimeout(() => s.stream.destroy(new Error('upstream reset')), 20);
    });
    px = await startProxy(h2cfg(up.url));
    const r = await req(px.url, { path: '/head-only' });
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_RESET');
    expect(r.complete).toBe(true);
    // The head was an answer: not retried.
    expect(up.seen).toHaveLength(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_responses_truncated_total', { route: 'h2' })).toBe(0);
  });

  it('resets the HTTP/2 client stream (never a clean end), counted as truncated', async () => {
    const { cut } = await resetting();
    px = await startProxy({ ...h2cfg(up?.url as string), log: { accessLog: true } });
    client = connect(px.url);
    const got = await new Promise<{ head: IncomingHttpHeaders; body: string; ended: boolean; rstCode: number | undefined }>((resolve) => {
      const st = (client as ClientHttp2Session).request({ ':method': 'GET', ':path': '/stream' });
      let head: IncomingHttpHeaders = {};
      let body = '';
      let ended = false;
      st.on('response', (h) => (head = h));
      st.on('data', (c: Buffer) => {
        body += c.toString();
        if (body === 'partial-') cut();
      });
      st.on('end', () => (ended = true));
      st.on('error', () => {});
      st.on('close', () => resolve({ head, body, ended, rstCode: st.rstCode }));
    });
    expect(got.head[':status']).toBe(200);
    expect(got.body).toBe('partial-');
    expect(got.ended).toBe(false);
    // A reset (RST_STREAM, the upstream's INTERNAL_ERROR), not a clean end.
    expect(got.rstCode).toBe(NGHTTP2_INTERNAL_ERROR);
    await waitFor(async () => (await metricValue(px?.metricsUrl as string, 'outrigger_responses_truncated_total', { route: 'h2' })) === 1, {
      timeout: 5000,
      what: 'the truncated response to be counted',
    });
    const access = px.logs.filter((l) => l.access === true);
    expect(access).toHaveLength(1);
    expect(access[0]).toMatchObject({ status: 200, protocol: 'h2c', error: 'response_truncated' });
  });

  it('cuts the HTTP/1.1 client connection (never a complete body), counted as truncated', async () => {
    const { cut } = await resetting();
    px = await startProxy(h2cfg(up?.url as string));
    const u = new URL(px.url);
    const got = await new Promise<{ status: number; body: string; complete: boolean }>((resolve, reject) => {
      const r = httpRequest({ host: u.hostname, port: u.port, path: '/stream', agent: false }, (res) => {
        let body = '';
        let settled = false;
        const done = () => {
          if (settled) return;
          settled = true;
          resolve({ status: res.statusCode ?? 0, body, complete: res.complete });
        };
        res.on('data', (c: Buffer) => {
          body += c.toString();
          if (body === 'partial-') cut();
        });
        res.on('end', done);
        res.on('aborted', done);
        res.on('error', done);
        res.on('close', done);
      });
      r.on('error', reject);
      r.end();
    });
    expect(got.status).toBe(200);
    expect(got.body).toBe('partial-');
    expect(got.complete).toBe(false);
    await waitFor(async () => (await metricValue(px?.metricsUrl as string, 'outrigger_responses_truncated_total', { route: 'h2' })) === 1, {
      timeout: 5000,
      what: 'the truncated response to be counted',
    });
  });
});

describe('request trailers to an HTTP/2 upstream', () => {
  it('an HTTP/2 client’s trailers follow its body upstream; forbidden fields are dropped', async () => {
    up = await startH2((st) => answer(st, ` ${st.body}`));
    px = await startProxy(h2cfg(up.url));
    client = connect(px.url);
    const got = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const st = (client as ClientHttp2Session).request({ ':method': 'POST', ':path': '/upload' }, { waitForTrailers: true });
      st.once('wantTrailers', () => st.sendTrailers({ 'x-checksum': 'c0ffee', 'content-length': '3' }));
      let status = 0;
      let body = '';
      st.on('response', (h) => (status = Number(h[':status'])));
      st.on('data', (c: Buffer) => (body += c.toString()));
      st.on('end', () => resolve({ status, body }));
      st.on('error', reject);
      st.end('abc');
    });
    expect(got).toEqual({ status: 200, body: 'session 0 POST /upload abc' });
    const seen = up.seen[0] as SeenStream;
    expect(seen.trailers?.['x-checksum']).toBe('c0ffee');
    expect(seen.trailers?.['content-length']).toBeUndefined();
  });

  it('a chunked HTTP/1.1 client’s trailers reach an h2c upstream', async () => {
    up = await startH2((st) => answer(st, ` ${st.body}`));
    px = await startProxy(h2cfg(up.url));
    const u = new URL(px.url);
    const got = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpRequest({ host: u.hostname, port: u.port, method: 'PUT', path: '/chunked', agent: false, headers: { trailer: 'x-digest' } }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      r.on('error', reject);
      r.write('one-');
      r.addTrailers({ 'x-digest': 'sha-256=abc' });
      r.end('two');
    });
    expect(got).toEqual({ status: 200, body: 'session 0 PUT /chunked one-two' });
    expect(up.seen[0]?.trailers?.['x-digest']).toBe('sha-256=abc');
  });

  it('a body without trailers ends the upstream stream cleanly (no empty trailer section needed)', async () => {
    up = await startH2((st) => answer(st, ` ${st.body}`));
    px = await startProxy(h2cfg(up.url));
    const r = await req(px.url, { method: 'POST', path: '/plain', body: 'xyz' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('session 0 POST /plain xyz');
    expect(up.seen[0]?.trailers ?? null).toBeNull();
  });
});

describe('bodyTimeout on an HTTP/2 upstream', () => {
  it('a stream idle for bodyTimeout after part of the body is cut on both sides and counted', async () => {
    let upstreamRst: number | undefined;
    up = await startH2((st) => {
      st.stream.respond({ ':status': 200, 'content-type': 'text/plain' });
      st.stream.write('partial-');
      st.stream.on('close', () => (upstreamRst = st.stream.rstCode));
    });
    px = await startProxy(h2cfg(up.url, {}, { bodyTimeout: '300ms' }));
    client = connect(px.url);
    const t0 = performance.now();
    const got = await new Promise<{ body: string; ended: boolean; rstCode: number | undefined }>((resolve) => {
      const st = (client as ClientHttp2Session).request({ ':method': 'GET', ':path': '/stall' });
      let body = '';
      let ended = false;
      st.on('data', (c: Buffer) => (body += c.toString()));
      st.on('end', () => (ended = true));
      st.on('error', () => {});
      st.on('close', () => resolve({ body, ended, rstCode: st.rstCode }));
    });
    const took = performance.now() - t0;
    expect(got.body).toBe('partial-');
    expect(got.ended).toBe(false);
    // INTERNAL_ERROR, not CANCEL: node's client reads a CANCEL as a clean end.
    expect(got.rstCode).toBe(NGHTTP2_INTERNAL_ERROR);
    expect(took).toBeGreaterThanOrEqual(250);
    await waitFor(() => upstreamRst === NGHTTP2_CANCEL, { timeout: 5000, what: 'the upstream stream to be cancelled' });
    expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'h2', kind: 'body' })).toBe(1);
    await waitFor(async () => (await metricValue(px?.metricsUrl as string, 'outrigger_responses_truncated_total', { route: 'h2' })) === 1, {
      timeout: 5000,
      what: 'the truncated response to be counted',
    });
  });

  it('a stream that keeps sending, or whose client keeps sending, outlives bodyTimeout', async () => {
    // Answers at once (not after the request body, as startH2 does).
    const server = createServer();
    const sessions: ServerHttp2Session[] = [];
    server.on('session', (ss: ServerHttp2Session) => sessions.push(ss));
    server.on('stream', (st: ServerHttp2Stream, h: IncomingHttpHeaders) => {
      st.on('error', () => {});
      st.respond({ ':status': 200 });
      if (h[':path'] === '/ticks') {
        let n = 0;
        const t = setInterval(() => {
          if (st.destroyed) return clearInterval(t);
          st.write(`t${n}`);
          if (++n === 8) {
            clearInterval(t);
            st.end();
          }
        }, 150);
      } else {
        // Silent until the client is done: only the client's data keeps the stream alive.
        let body = '';
        st.on('data', (c: Buffer) => (body += c.toString()));
        st.on('end', () => st.end(`got ${body}`));
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    try {
      px = await startProxy(h2cfg(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {}, { bodyTimeout: '400ms', timeout: '10s' }));
      client = connect(px.url);
      const c = client;
      const call = (path: string, send: boolean) =>
        new Promise<{ body: string; ended: boolean }>((resolve) => {
          const st = c.request({ ':method': 'POST', ':path': path });
          let body = '';
          let ended = false;
          st.on('data', (d: Buffer) => (body += d.toString()));
          st.on('end', () => (ended = true));
          st.on('error', () => {});
          st.on('close', () => resolve({ body, ended }));
          if (!send) {
            st.end();
            return;
          }
          let n = 0;
          const t = setInterval(() => {
            if (st.destroyed) return clearInterval(t);
            if (++n < 8) st.write(`c${n}`);
            else {
              clearInterval(t);
              st.end();
            }
          }, 150);
        });
      // Both last about 1.2 s, three times bodyTimeout, with no gap over 150 ms one way or the other.
      const [ticks, talk] = await Promise.all([call('/ticks', false), call('/talk', true)]);
      expect(ticks).toEqual({ body: 't0t1t2t3t4t5t6t7', ended: true });
      expect(talk).toEqual({ body: 'got c1c2c3c4c5c6c7', ended: true });
      expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'h2', kind: 'body' })).toBe(0);
    } finally {
      for (const ss of sessions) ss.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

describe('maxConnections on an HTTP/2 upstream', () => {
  it('opens another session when each is at the peer’s stream limit, up to maxConnections, and queues past that', async () => {
    const held: SeenStream[] = [];
    up = await startH2((st) => held.push(st), { maxConcurrentStreams: 2 });
    px = await startProxy(h2cfg(up.url, { maxConnections: 3 }, { timeout: '10s' }));
    // The first request learns the peer's limit (its SETTINGS), so the rest are placed by it.
    const first = req(px.url, { path: '/0' });
    await waitFor(() => held.length === 1, { timeout: 5000, what: 'the first request upstream' });
    const rest = [1, 2, 3, 4, 5, 6, 7].map((i) => req(px?.url as string, { path: `/${i}` }));
    // 3 sessions × 2 streams upstream at once; the last two wait in the proxy's queue.
    await waitFor(() => held.length === 6, { timeout: 5000, what: 'six streams upstream' });
    await sleep(100);
    expect(held).toHaveLength(6);
    expect(up.sessions).toHaveLength(3);
    const perSession = [0, 1, 2].map((i) => held.filter((h) => h.session === i).length);
    expect(perSession).toEqual([2, 2, 2]);
    // Releasing streams lets the queued ones through, on the same three sessions.
    for (const h of held.splice(0)) answer(h);
    await waitFor(() => held.length === 2, { timeout: 5000, what: 'the queued two upstream' });
    for (const h of held.splice(0)) answer(h);
    const all = await Promise.all([first, ...rest]);
    expect(all.map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200, 200, 200]);
    expect(up.sessions).toHaveLength(3);
  });
});

describe('stale-if-error on an HTTP/2 upstream', () => {
  it('keeps an h2c answer and serves it when the upstream later fails', async () => {
    let failing = false;
    up = await startH2((st) => {
      if (failing) {
        st.stream.respond({ ':status': 503 });
        st.stream.end('down');
        return;
      }
      st.stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': '5', 'cache-control': 'max-age=60' });
      st.stream.end('fresh');
    });
    px = await startProxy(h2cfg(up.url, {}, { retry: { attempts: 0 }, fallback: { on: ['5xx'], staleIfError: {} } }));
    const a = await req(px.url, { path: '/doc' });
    expect(a.status).toBe(200);
    expect(a.body).toBe('fresh');
    failing = true;
    const b = await req(px.url, { path: '/doc' });
    expect(b.status).toBe(200);
    expect(b.body).toBe('fresh');
    expect(b.headers['x-outrigger-fallback']).toBe('stale');
    expect(await metricValue(px.metricsUrl, 'outrigger_stale_served_total', { route: 'h2' })).toBe(1);
    // A body that ends short of its Content-Length is never kept.
    failing = false;
    const c = await req(px.url, { path: '/other' });
    expect(c.status).toBe(200);
  });
});

describe('half-open probe timeout on an HTTP/2 upstream', () => {
  it('bounds an h2c probe by breaker.probeTimeout when the route has no timeout, and the breaker re-opens', async () => {
    let mode: 'fail' | 'hang' | 'ok' = 'fail';
    up = await startH2((s) => {
      if (mode === 'hang' || s.stream.destroyed) return;
      s.stream.respond({ ':status': mode === 'fail' ? 503 : 200 });
      s.stream.end(mode);
    });
    px = await startProxy(h2cfg(up.url, {}, { timeout: 0, retry: { attempts: 0 }, breaker: { consecutiveFailures: 1, halfOpenAfter: '200ms', probeTimeout: '300ms', failOn: ['5xx'] } }));
    const proxy = px;
    const state = async () => (await breakerState(proxy, 'h2')).state;
    expect((await req(px.url, { path: '/a' })).status).toBe(503);
    expect(await state()).toBe('open');
    mode = 'hang';
    await sleep(300);
    const started = Date.now();
    const probe = await req(px.url, { path: '/a' });
    // Without the probe bound the attempt would wait on the stream forever (timeout: 0).
    expect(probe.status).toBe(504);
    expect(Date.now() - started).toBeLessThan(4000);
    expect(await state()).toBe('open');
    expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'h2', kind: 'per_try' })).toBe(1);
    mode = 'ok';
    const recovered = await waitFor(
      async () => {
        const r = await req(px?.url ?? '', { path: '/a' });
        return r.status === 200 ? r : null;
      },
      { timeout: 8000, interval: 100, what: 'a successful probe' },
    );
    expect(recovered.body).toBe('ok');
    expect(await state()).toBe('closed');
  });
});
