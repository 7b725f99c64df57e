// Issue 9: request limits (431/414/400, connection closed), Via loops, CONNECT and OPTIONS *.
import { connect } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ok, slowBody, startUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy } from '../helpers/proxy.js';
import { rawGet, rawRequest } from '../helpers/raw.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();

async function setup(extra: Record<string, unknown> = {}) {
  const up = track(await startUpstream(ok('up')));
  const px = track(await startProxy(oneRoute(up.url, {}, extra)));
  return { up, px, port: px.app.proxy.port };
}

function headerLines(n: number, prefix = 'x-h'): string {
  let s = '';
  for (let i = 0; i < n; i++) s += `${prefix}${i}: v\r\n`;
  return s;
}

describe('edge limits', () => {
  it('2,001 header lines with Content-Length last: 431, and nothing reaches the upstream', async () => {
    const { up, port } = await setup({ http: { maxHeaderBytes: '1MiB' } });
    const r = await rawRequest(port, `POST / HTTP/1.1\r\nhost: a\r\n${headerLines(1999)}content-length: 5\r\n\r\nhello`);
    expect(r.status).toBe(431);
    expect(r.text).toMatch(/connection: close/i);
    expect(r.text).toContain('OUTRIGGER_HEADERS_TOO_LARGE');
    expect(up.seen).toEqual([]);
  });

  it('more than http.maxHeaders lines: 431 and the connection closed; at the limit: forwarded', async () => {
    const { up, port } = await setup({ http: { maxHeaders: 20 } });
    const over = await rawRequest(port, `GET / HTTP/1.1\r\nhost: a\r\n${headerLines(20)}\r\n`);
    expect(over.status).toBe(431);
    expect(over.clean).toBe(true);
    const at = await rawRequest(port, `GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n${headerLines(18)}\r\n`);
    expect(at.status).toBe(200);
    expect(up.seen).toHaveLength(1);
  });

  it('a header block over http.maxHeaderBytes (default 16KiB): 431', async () => {
    const { up, port } = await setup();
    const r = await rawRequest(port, `GET / HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(17 * 1024)}\r\n\r\n`);
    expect(r.status).toBe(431);
    expect(up.seen).toEqual([]);
  });

  it('a target over http.maxTargetBytes (default 8KiB): 414', async () => {
    const { up, port } = await setup();
    const r = await rawGet(port, `/${'a'.repeat(8200)}`);
    expect(r.status).toBe(414);
    expect(r.text).toContain('OUTRIGGER_TARGET_TOO_LONG');
    expect((await rawGet(port, `/${'a'.repeat(8000)}`)).status).toBe(200);
    expect(up.seen).toHaveLength(1);
  });

  it('two Host headers, or an absolute-form authority other than Host: 400', async () => {
    const { up, port } = await setup();
    const two = await rawRequest(port, 'GET / HTTP/1.1\r\nhost: a\r\nHost: b\r\n\r\n');
    expect(two.status).toBe(400);
    expect(two.text).toMatch(/connection: close/i);
    const abs = await rawRequest(port, 'GET http://a.local/x HTTP/1.1\r\nhost: b.local\r\nconnection: close\r\n\r\n');
    expect(abs.status).toBe(400);
    const same = await rawRequest(port, 'GET http://a.local/x HTTP/1.1\r\nhost: A.local:80\r\nconnection: close\r\n\r\n');
    expect(same.status).toBe(200);
    expect(up.seen.map((s) => s.url)).toEqual(['/x']);
  });

  it('adds Via, and refuses a request that already passed through it with 508', async () => {
    const { up, port } = await setup({ http: { via: 'edge-1' } });
    expect((await rawGet(port, '/a', 'via: 1.0 fred\r\n')).status).toBe(200);
    expect(up.seen[0]?.headers.via).toBe('1.0 fred, 1.1 edge-1');
    const loop = await rawGet(port, '/a', 'via: 1.1 lb, 1.1 edge-1\r\n');
    expect(loop.status).toBe(508);
    expect(loop.text).toContain('OUTRIGGER_LOOP_DETECTED');
    expect(up.seen).toHaveLength(1);
  });

  it('CONNECT gets 405 with an explanation; OPTIONS * is answered', async () => {
    const { up, port } = await setup();
    const c = await rawRequest(port, 'CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n');
    expect(c.status).toBe(405);
    expect(c.text).toContain('CONNECT tunnels are not supported');
    expect(c.text).toMatch(/allow: /i);
    const o = await rawRequest(port, 'OPTIONS * HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n');
    expect(o.status).toBe(200);
    expect(o.text).toMatch(/allow: GET/i);
    expect(up.seen).toEqual([]);
  });

  it('X-Forwarded-Proto and X-Forwarded-Host from an ingress are kept; X-Forwarded-For is appended to', async () => {
    const { up, port } = await setup();
    await rawGet(port, '/', 'x-forwarded-proto: https\r\nx-forwarded-host: shop.example\r\nx-forwarded-for: 203.0.113.9\r\n');
    const h = up.seen[0]?.headers;
    expect(h?.['x-forwarded-proto']).toBe('https');
    expect(h?.['x-forwarded-host']).toBe('shop.example');
    expect(h?.['x-forwarded-for']).toBe('203.0.113.9, 127.0.0.1');
  });

  it('a malformed request on an idle socket gets a raw 400', async () => {
    const { port } = await setup();
    const r = await rawRequest(port, 'GET / HTTP/1.1\r\nhost: a\r\nbad header\r\n\r\n');
    expect(r.status).toBe(400);
  });

  it('a malformed request pipelined behind a response in flight never gets a raw 400 inside that response', async () => {
    const up = track(await startUpstream(slowBody(4, 150)));
    const px = track(await startProxy(oneRoute(up.url)));
    const text = await new Promise<string>((resolve) => {
      const s = connect(px.app.proxy.port, '127.0.0.1');
      let out = '';
      let sentGarbage = false;
      const t = setTimeout(() => s.destroy(), 10_000);
      s.on('data', (c: Buffer) => {
        out += c.toString('latin1');
        // The response has started: now a request Node cannot parse arrives on the same socket.
        if (!sentGarbage && out.includes('chunk0')) {
          sentGarbage = true;
          s.write('this is not http\r\n\r\n');
        }
      });
      s.on('error', () => {});
      s.on('close', () => {
        clearTimeout(t);
        resolve(out);
      });
      s.write('GET /a HTTP/1.1\r\nhost: a\r\n\r\n');
    });
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(text).toContain('chunk0');
    expect(text).not.toContain('HTTP/1.1 400');
  });
});
