// Issue 9: an attempt abandoned while queued in undici is dropped unsent, without
// destroying the pooled connection or the body stream its retry sends.
import { request as httpRequest } from 'node:http';
import { errors } from 'undici';
import { describe, expect, it } from 'vitest';
import { startUpstream } from '../helpers/upstream.js';
import { startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { isInternalDispatchError } from '../../src/proxy/attempt.js';

const track = useCleanup();

describe('attempt lifecycle', () => {
  it('a streamed PUT retried while the pool is saturated reaches the upstream whole, exactly once', async () => {
    const up = track(
      await startUpstream((r, res, _n, body) => {
        // The first request holds the only pooled connection for a while.
        const wait = r.url === '/hold' ? 1500 : 0;
        setTimeout(() => {
          res.writeHead(200, { 'content-length': String(Buffer.byteLength(`${r.method} ${body.length}`)) });
          res.end(`${r.method} ${body.length}`);
        }, wait);
      }),
    );
    const px = track(
      await startProxy({
        upstreams: { up: { endpoints: [up.url], maxConnections: 1 } },
        routes: [
          { name: 'hold', match: { path: '/hold' }, upstream: 'up', retry: { attempts: 0 } },
          {
            name: 'r1',
            match: { pathPrefix: '/' },
            upstream: 'up',
            timeout: '20s',
            retry: { attempts: 2, perTryTimeout: '1s', bufferBody: 0, on: ['connect-failure', 'refused-stream', 'reset'], backoff: { base: '1ms', max: '2ms' }, budget: { enabled: false } },
            breaker: { enabled: false },
          },
        ],
      }),
    );
    const hold = req(px.url, { path: '/hold' });
    await new Promise((r) => setTimeout(r, 100));
    const size = 256 * 1024;
    const put = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpRequest(`${px.url}/put`, { method: 'PUT', headers: { 'transfer-encoding': 'chunked' }, agent: false }, (res) => {
        let b = '';
        res.on('data', (c: Buffer) => (b += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b }));
      });
      r.on('error', reject);
      // Written in pieces: the body is a stream the proxy cannot buffer.
      for (let i = 0; i < 4; i++) r.write(Buffer.alloc(size / 4, 97));
      r.end();
    });
    expect((await hold).status).toBe(200);
    const p = await put;
    // Under heavy load the per-try timer of the retry may also fire before the slot frees;
    // what must never happen is a partial or doubled body, or a lost pooled connection.
    const puts = up.seen.filter((s) => s.method === 'PUT');
    if (p.status === 200) {
      expect(p.body).toBe(`PUT ${size}`);
      expect(puts).toHaveLength(1);
      expect(puts[0]?.body.length).toBe(size);
    } else {
      expect(p.status).toBe(504);
      expect(puts).toHaveLength(0);
    }
    expect(up.seen.filter((s) => s.url === '/hold')).toHaveLength(1);
    // The pooled connection survived: the next request is served on it.
    expect((await req(px.url, { path: '/after' })).status).toBe(200);
    expect(up.openSockets()).toBe(1);
  }, 30_000);

  it('classifies undici option and pool errors as internal, connect errors not', () => {
    expect(isInternalDispatchError(new errors.InvalidArgumentError('bad'))).toBe(true);
    expect(isInternalDispatchError(new errors.NotSupportedError('no'))).toBe(true);
    expect(isInternalDispatchError(new errors.ClientDestroyedError())).toBe(true);
    expect(isInternalDispatchError(new errors.ConnectTimeoutError())).toBe(false);
    expect(isInternalDispatchError(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }))).toBe(false);
    expect(isInternalDispatchError(new errors.SocketError('closed'))).toBe(false);
  });
});
