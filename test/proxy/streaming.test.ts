import { request, type ClientRequest, type IncomingMessage } from 'node:http';
import { describe, expect, it } from 'vitest';
import { ok, resetMidBody, startUpstream } from '../helpers/upstream.js';
import { metricValue, oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

const track = useCleanup();

/** Opens a request and resolves at response headers, leaving the body to the test. */
function open(px: TestProxy, path: string): { req: ClientRequest; res: Promise<IncomingMessage> } {
  const r = request({ host: '127.0.0.1', port: new URL(px.url).port, path, agent: false });
  const res = new Promise<IncomingMessage>((resolve, reject) => {
    r.on('response', resolve);
    r.on('error', reject);
  });
  r.end();
  return { req: r, res };
}

describe('streaming', () => {
  it('streams a slow body: the first chunk reaches the client before the last is sent', async () => {
    let clientGotFirst = false;
    let sentLastAfterClientGotFirst: boolean | null = null;
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('first;');
        // Hold the rest until the client has the first chunk (or give up after 5s).
        waitFor(() => clientGotFirst, { timeout: 5000 })
          .catch(() => undefined)
          .then(() => {
            sentLastAfterClientGotFirst = clientGotFirst;
            res.end('last');
          });
      }),
    );
    const px = track(await startProxy(oneRoute(up.url)));
    const { res } = open(px, '/a');
    const body = await new Promise<string>((resolve) => {
      let s = '';
      void res.then((r) => {
        r.on('data', (c: Buffer) => {
          s += c.toString();
          if (s.includes('first;')) clientGotFirst = true;
        });
        r.on('end', () => resolve(s));
      });
    });
    expect(body).toBe('first;last');
    expect(sentLastAfterClientGotFirst).toBe(true);
  });

  it('a client that goes away aborts the upstream request at once (header phase)', async () => {
    let upstreamClosedAt = 0;
    const up = track(
      await startUpstream((_q, res) => {
        res.on('close', () => (upstreamClosedAt = performance.now()));
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { timeout: '30s' })));
    const { req: r, res } = open(px, '/a');
    res.catch(() => undefined);
    await waitFor(() => up.seen.length === 1);
    const abortedAt = performance.now();
    r.destroy();
    await waitFor(() => upstreamClosedAt > 0, { timeout: 2000, what: 'the upstream request to be aborted' });
    expect(upstreamClosedAt - abortedAt).toBeLessThan(1000);
    await waitFor(async () => (await metricValue(px.metricsUrl, 'outrigger_requests_total', { route: 'r1', code: '499' })) === 1, { what: 'the 499' });
  });

  it('a client that goes away mid-body aborts the upstream response', async () => {
    let upstreamClosedAt = 0;
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('part');
        res.on('close', () => (upstreamClosedAt = performance.now()));
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { bodyTimeout: '30s' })));
    const { req: r, res } = open(px, '/a');
    const msg = await res;
    await new Promise<void>((resolve) => msg.once('data', () => resolve()));
    const abortedAt = performance.now();
    r.destroy();
    await waitFor(() => upstreamClosedAt > 0, { timeout: 2000, what: 'the upstream response to be aborted' });
    expect(upstreamClosedAt - abortedAt).toBeLessThan(1000);
  });

  it('an upstream that dies mid-body ends the client response abruptly (content-length)', async () => {
    const up = track(await startUpstream(resetMidBody));
    const px = track(await startProxy(oneRoute(up.url)));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('partial-');
    expect(r.complete).toBe(false);
  });

  it('an upstream that dies mid-body ends the client response abruptly (chunked)', async () => {
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('partial-');
        setTimeout(() => res.socket?.destroy(), 50);
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { breaker: { consecutiveFailures: 1 } })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('partial-');
    expect(r.complete).toBe(false);
    // Nothing is retried once bytes went to the client.
    expect(up.seen).toHaveLength(1);
  });

  it('bodyTimeout cuts a body that goes idle', async () => {
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('some');
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { bodyTimeout: '300ms' })));
    const t0 = performance.now();
    const r = await req(px.url, { path: '/a' });
    const elapsed = performance.now() - t0;
    expect(r.body).toBe('some');
    expect(r.complete).toBe(false);
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(2000);
    expect(await metricValue(px.metricsUrl, 'outrigger_timeouts_total', { route: 'r1', kind: 'body' })).toBe(1);
  });

  it('bodyTimeout is an idle limit, not a total one', async () => {
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        let i = 0;
        const t = setInterval(() => {
          res.write(`c${i}`);
          if (++i === 6) {
            clearInterval(t);
            res.end();
          }
        }, 100);
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { bodyTimeout: '400ms' })));
    const r = await req(px.url, { path: '/a' });
    expect(r.complete).toBe(true);
    expect(r.body).toBe('c0c1c2c3c4c5');
  });

  it('streams a large body with backpressure intact', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'q');
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(chunk.length * 64) });
        let i = 0;
        const write = () => {
          while (i < 64) {
            i++;
            if (!res.write(chunk)) return void res.once('drain', write);
          }
          res.end();
        };
        write();
      }),
    );
    const px = track(await startProxy(oneRoute(up.url)));
    const { res } = open(px, '/big');
    const msg = await res;
    let total = 0;
    // Read slowly at first so the proxy has to pause the upstream.
    msg.pause();
    await new Promise((r) => setTimeout(r, 100));
    msg.on('data', (c: Buffer) => (total += c.length));
    msg.resume();
    await new Promise<void>((r) => msg.on('end', () => r()));
    expect(total).toBe(chunk.length * 64);
    expect(msg.complete).toBe(true);
  });

  it('client backpressure is not an idle upstream: bodyTimeout does not cut a slow reader', async () => {
    const chunk = Buffer.alloc(64 * 1024, 'q');
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-length': String(chunk.length * 100) });
        let i = 0;
        const write = () => {
          while (i < 100) {
            i++;
            if (!res.write(chunk)) return void res.once('drain', write);
          }
          res.end();
        };
        write();
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { bodyTimeout: '200ms' })));
    const msg = await open(px, '/big').res;
    msg.pause();
    await new Promise((r) => setTimeout(r, 700));
    let total = 0;
    msg.on('data', (c: Buffer) => (total += c.length));
    msg.resume();
    await new Promise<void>((r) => msg.on('close', () => r()));
    expect(total).toBe(chunk.length * 100);
    expect(msg.complete).toBe(true);
  });

  it('a client that goes away mid-upload is a 499, not an upstream failure', async () => {
    let upstreamGotHeaders = false;
    const up = track(await startUpstream(() => undefined));
    up.server.prependListener('request', () => (upstreamGotHeaders = true));
    const px = track(await startProxy(oneRoute(up.url, { retry: { bufferBody: 16 }, breaker: { consecutiveFailures: 1, failOn: ['reset', 'connect-failure'] } })));
    const c = request({ host: '127.0.0.1', port: new URL(px.url).port, method: 'POST', path: '/up', agent: false, headers: { 'content-length': '100000' } });
    c.on('error', () => undefined);
    c.write('x'.repeat(50_000));
    await waitFor(() => upstreamGotHeaders, { what: 'the streamed upload upstream' });
    c.destroy();
    await waitFor(async () => (await metricValue(px.metricsUrl, 'outrigger_requests_total', { route: 'r1', method: 'POST', code: '499' })) === 1, { what: 'the 499' });
    const text = (await req(px.metricsUrl, { path: '/metrics' })).body;
    // Attempt series start at zero; the client leaving must not have moved any of them.
    for (const l of text.split('\n').filter((x) => x.startsWith('outrigger_upstream_attempts_total{'))) expect(l).toMatch(/ 0$/);
    expect(text).not.toMatch(/^outrigger_requests_total\{route="r1",method="POST",code="50\d"\} [1-9]/m);
    const [b] = JSON.parse((await req(px.adminUrl, { path: '/breakers' })).body) as Array<{ state: string; consecutiveFailures: number }>;
    expect(b).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
  });

  it('HEAD responses carry no body', async () => {
    const up = track(await startUpstream(ok('hello')));
    const px = track(await startProxy(oneRoute(up.url)));
    const r = await req(px.url, { method: 'HEAD', path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('');
    expect(r.headers['content-length']).toBe('5');
  });
});

describe('responses without a body', () => {
  it.each([204, 304])('passes a %d through and ends it', async (status) => {
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(status, { etag: '"v1"' });
        res.end();
      }),
    );
    const px = track(await startProxy(oneRoute(up.url)));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(status);
    expect(r.body).toBe('');
    expect(r.complete).toBe(true);
    expect(r.headers.etag).toBe('"v1"');
  });

  it('keeps the pooled connection usable after HEAD responses', async () => {
    const up = track(await startUpstream(ok('hello')));
    const px = track(await startProxy({ upstreams: { up: { endpoints: [up.url], maxConnections: 1 } }, routes: [{ name: 'r1', upstream: 'up' }] }));
    for (let i = 0; i < 3; i++) expect((await req(px.url, { method: 'HEAD', path: '/a' })).status).toBe(200);
    expect((await req(px.url, { path: '/a' })).body).toBe('hello');
    expect(up.openSockets()).toBe(1);
  });

  it('passes an empty 200 through and ends it', async () => {
    const up = track(await startUpstream(ok('')));
    const px = track(await startProxy(oneRoute(up.url)));
    for (let i = 0; i < 3; i++) {
      const r = await req(px.url, { path: '/a' });
      expect(r.status).toBe(200);
      expect(r.complete).toBe(true);
    }
  });

  it('retries an empty-bodied 503 and returns the next answer', async () => {
    const up = track(
      await startUpstream((q, res, n) => {
        if (n === 1) {
          res.writeHead(503, { 'content-length': '0' });
          return void res.end();
        }
        ok('second')(q, res, n, '');
      }),
    );
    const px = track(await startProxy(oneRoute(up.url, { retry: { backoff: { base: '1ms', max: '1ms' } } })));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('second');
  });
});

describe('body bytes that arrive before the policy layers decide', () => {
  it('a small body sent with the head is forwarded whole, and the connection stays pooled', async () => {
    const up = track(await startUpstream(ok('x'.repeat(2000))));
    const px = track(await startProxy({ upstreams: { up: { endpoints: [up.url], maxConnections: 1 } }, routes: [{ name: 'r1', upstream: 'up' }] }));
    for (let i = 0; i < 3; i++) {
      const r = await req(px.url, { path: '/a' });
      expect(r.complete).toBe(true);
      expect(r.body).toBe('x'.repeat(2000));
    }
    expect(up.openSockets()).toBe(1);
  });

  it('a retried 503 whose body already arrived is thrown away, and the retry reuses the connection', async () => {
    const up = track(
      await startUpstream((q, res, n) => {
        if (n === 1) {
          res.writeHead(503, { 'content-length': '3000' });
          return void res.end('e'.repeat(3000));
        }
        ok('second')(q, res, n, '');
      }),
    );
    const px = track(await startProxy({ upstreams: { up: { endpoints: [up.url], maxConnections: 1 } }, routes: [{ name: 'r1', upstream: 'up', retry: { backoff: { base: '1ms', max: '1ms' } } }] }));
    const r = await req(px.url, { path: '/a' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('second');
    expect(up.openSockets()).toBe(1);
  });

  it('a body sent at once, larger than what is held before they decide, arrives whole', async () => {
    const body = Buffer.alloc(512 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = i % 251;
    const up = track(
      await startUpstream((_q, res) => {
        res.writeHead(200, { 'content-length': String(body.length) });
        res.end(body);
      }),
    );
    const px = track(await startProxy(oneRoute(up.url)));
    const { res } = open(px, '/big');
    const msg = await res;
    const chunks: Buffer[] = [];
    msg.on('data', (c: Buffer) => chunks.push(c));
    await new Promise<void>((r) => msg.on('end', () => r()));
    expect(msg.complete).toBe(true);
    expect(Buffer.concat(chunks).equals(body)).toBe(true);
  });
});
