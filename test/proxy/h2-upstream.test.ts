// HTTP/2 upstreams (protocol h2c) against a real node:http2 server: the session per
// endpoint is replaced after a GOAWAY, reaped once idle for keepAliveTimeout (never while a
// stream is open), and an upstream reset after the response head and part of the body
// reaches the client as a reset stream (HTTP/2) or a cut connection (HTTP/1.1), counted in
// outrigger_responses_truncated_total.
import { connect, constants, createServer, type ClientHttp2Session, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { metricValue, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { sleep, waitFor } from '../helpers/wait.js';

const { NGHTTP2_NO_ERROR, NGHTTP2_INTERNAL_ERROR, NGHTTP2_ENHANCE_YOUR_CALM } = constants;

interface SeenStream {
  /** Index of the upstream session (in order of arrival) the stream came on. */
  session: number;
  method: string;
  path: string;
  body: string;
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
async function startH2(handler: H2Handler): Promise<H2Upstream> {
  const sessions: ServerHttp2Session[] = [];
  const closedAt = new Map<number, number>();
  const seen: SeenStream[] = [];
  const server: Http2Server = createServer();
  server.on('session', (s: ServerHttp2Session) => {
    const i = sessions.push(s) - 1;
    s.once('close', () => closedAt.set(i, performance.now()));
    s.on('error', () => {});
  });
  server.on('stream', (stream, headers) => {
    const session = sessions.indexOf(stream.session as ServerHttp2Session);
    const chunks: Buffer[] = [];
    stream.on('error', () => {});
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const s: SeenStream = { session, method: String(headers[':method']), path: String(headers[':path']), body: Buffer.concat(chunks).toString(), stream };
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
