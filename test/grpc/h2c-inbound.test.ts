// Inbound h2c with prior knowledge on the proxy port, next to HTTP/1.1: node:http2 client
// and curl --http2-prior-knowledge against an HTTP/1.1 upstream.
import { execFile } from 'node:child_process';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { existsSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy, type TestProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';

let up: TestUpstream | undefined;
let px: TestProxy | undefined;
let session: ClientHttp2Session | undefined;
afterEach(async () => {
  session?.destroy();
  await px?.close();
  await up?.close();
  px = up = session = undefined;
});

interface H2Res {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders;
  body: string;
}

function h2req(s: ClientHttp2Session, headers: Record<string, string>, body?: string): Promise<H2Res> {
  return new Promise((resolve, reject) => {
    const st = s.request(headers, { endStream: body === undefined });
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    st.on('response', (h) => (head = h));
    st.on('trailers', (t) => (trailers = t));
    st.on('data', (c: Buffer) => chunks.push(c));
    st.on('end', () => resolve({ headers: head, trailers, body: Buffer.concat(chunks).toString() }));
    st.on('error', reject);
    if (body !== undefined) st.end(body);
  });
}

const curl = ['/usr/bin/curl', '/usr/local/bin/curl'].find((p) => existsSync(p));

describe('inbound h2c', () => {
  it('serves HTTP/2 with prior knowledge and HTTP/1.1 on the same port, through the same route', async () => {
    up = await startUpstream((rq, res, _n, body) => {
      res.setHeader('trailer', 'x-checksum');
      res.writeHead(200, { 'content-type': 'text/plain', 'x-host': rq.headers.host ?? '' });
      res.write(`${rq.method} ${rq.url} ${body}`);
      res.addTrailers({ 'x-checksum': 'abc' });
      res.end();
    });
    px = await startProxy(oneRoute(up.url, { match: { host: 'svc.local' } }, { log: { accessLog: true } }));
    session = connect(px.url);
    const r = await h2req(session, { ':method': 'POST', ':path': '/a?x=1', ':authority': 'svc.local', 'content-type': 'text/plain' }, 'hello');
    expect(r.headers[':status']).toBe(200);
    expect(r.body).toBe('POST /a?x=1 hello');
    expect(r.trailers['x-checksum']).toBe('abc');
    expect(r.headers['x-outrigger-attempts']).toBe('1');
    // The upstream saw the authority as Host and no pseudo-header.
    expect(up.seen[0]?.headers.host).toBe(new URL(up.url).host);
    expect(up.seen[0]?.rawHeaders.some((h) => h.startsWith(':'))).toBe(false);
    const g = await h2req(session, { ':method': 'GET', ':path': '/b', ':authority': 'svc.local' });
    expect(g.body).toBe('GET /b ');
    const h1 = await req(px.url, { path: '/c', headers: { host: 'svc.local' } });
    expect(h1.status).toBe(200);
    expect(h1.body).toBe('GET /c ');
    const access = px.logs.filter((l) => l.access === true);
    expect(access.map((l) => l.protocol)).toEqual(['h2c', 'h2c', 'http/1.1']);
    // No route for another authority: the JSON error, over HTTP/2.
    const miss = await h2req(session, { ':method': 'GET', ':path': '/', ':authority': 'other.local' });
    expect(miss.headers[':status']).toBe(404);
    expect(miss.headers['x-outrigger-error']).toBe('OUTRIGGER_NO_ROUTE');
  });

  it('announces http2.maxConcurrentStreams and the header list size', async () => {
    up = await startUpstream();
    px = await startProxy(oneRoute(up.url, {}, { http2: { maxConcurrentStreams: 7 }, http: { maxHeaderBytes: 4096 } }));
    session = connect(px.url);
    await new Promise<void>((resolve) => session?.once('remoteSettings', () => resolve()));
    expect(session.remoteSettings.maxConcurrentStreams).toBe(7);
    expect(session.remoteSettings.maxHeaderListSize).toBe(4096);
  });

  it.runIf(curl !== undefined)('answers curl --http2-prior-knowledge', async () => {
    up = await startUpstream();
    px = await startProxy(oneRoute(up.url));
    const out = await new Promise<string>((resolve, reject) =>
      execFile(curl as string, ['-s', '--http2-prior-knowledge', '-D', '-', '--max-time', '5', `${px?.url}/x`], (err, stdout) => (err ? reject(err) : resolve(stdout))),
    );
    expect(out).toMatch(/^HTTP\/2 200/);
    expect(out).toMatch(/\r\n\r\nok$/);
  });
});
