// Issue 9: the route timeout starts when the whole request has been received; the upload
// itself is bounded by requestTimeout (408).
import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { startUpstream, type Behaviour } from '../helpers/upstream.js';
import { oneRoute, startProxy } from '../helpers/proxy.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();

const echoLength: Behaviour = (_req, res, _n, body) => {
  res.writeHead(200, { 'content-length': String(String(body.length).length) });
  res.end(String(body.length));
};

/** Sends `pieces` body chunks `gapMs` apart (chunked, or with a content-length). */
function slowUpload(url: string, pieces: number, gapMs: number, withLength: boolean): Promise<{ status: number; body: string; code: string | undefined }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = withLength ? { 'content-length': String(pieces * 10) } : { 'transfer-encoding': 'chunked' };
    const r = httpRequest(`${url}/up`, { method: 'POST', headers, agent: false }, (res) => {
      let b = '';
      res.on('data', (c: Buffer) => (b += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: b, code: res.headers['x-outrigger-error'] as string | undefined }));
    });
    r.on('error', reject);
    let i = 0;
    const t = setInterval(() => {
      if (r.destroyed) return clearInterval(t);
      r.write('x'.repeat(10));
      if (++i >= pieces) {
        clearInterval(t);
        r.end();
      }
    }, gapMs);
  });
}

describe('deadline and upload timeout', () => {
  it.each([
    ['streamed', false],
    ['buffered', true],
  ] as const)('a 2s %s upload under timeout: 1s is answered 200', async (_kind, withLength) => {
    const up = track(await startUpstream(echoLength));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '1s', retry: { attempts: withLength ? 1 : 0 } })));
    const r = await slowUpload(px.url, 8, 250, withLength);
    expect(r.status).toBe(200);
    expect(r.body).toBe('80');
  }, 20_000);

  it.each([
    ['streamed', false],
    ['buffered', true],
  ] as const)('a %s upload longer than requestTimeout gets 408 OUTRIGGER_REQUEST_TIMEOUT', async (_kind, withLength) => {
    const up = track(await startUpstream(echoLength));
    const px = track(await startProxy(oneRoute(up.url, { requestTimeout: '500ms', retry: { attempts: withLength ? 1 : 0 } })));
    const r = await slowUpload(px.url, 40, 100, withLength);
    expect(r.status).toBe(408);
    expect(r.code).toBe('OUTRIGGER_REQUEST_TIMEOUT');
  }, 20_000);

  it('the route timeout still applies once the request is in', async () => {
    const up = track(await startUpstream(() => {}));
    const px = track(await startProxy(oneRoute(up.url, { timeout: '300ms', retry: { attempts: 0 } })));
    const r = await slowUpload(px.url, 2, 50, false);
    expect(r.status).toBe(504);
  }, 20_000);
});
