// protocol: h2 (HTTP/2 over TLS, ALPN h2) end to end, against the real CLI (`node
// dist/main.js`, built by `npm run build`) as a child process: the proxy has no CA option and
// keeps Node's default certificate checks, so the test's self-signed certificate is trusted
// through NODE_EXTRA_CA_CERTS, which Node reads only at process start. Upstreams: a
// node:http2 secure server and a grpc-js server with TLS credentials.
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createSecureServer, type Http2SecureServer, type IncomingHttpHeaders, type ServerHttp2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireMain, startCli, type Cli } from '../helpers/cli.js';
import { req } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
});
beforeAll(requireMain);

// --- a self-signed certificate for 127.0.0.1 and localhost ---------------------------------

/** One DER element. */
function der(tag: number, ...parts: Buffer[]): Buffer {
  const body = Buffer.concat(parts);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}

function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number) as [number, number, ...number[]];
  const out = [40 * a + b];
  for (let v of rest) {
    const bytes = [v & 0x7f];
    while ((v >>= 7) > 0) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return der(0x06, Buffer.from(out));
}

const utcTime = (d: Date): Buffer => der(0x17, Buffer.from(`${d.toISOString().replace(/[-:T]/g, '').slice(2, 14)}Z`));

/** The same certificate `openssl req -x509` makes, built with node:crypto (no X.509 writer there). */
function nodeCert(): { key: string; cert: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const ecdsaSha256 = der(0x30, oid('1.2.840.10045.4.3.2'));
  const name = der(0x30, der(0x31, der(0x30, oid('2.5.4.3'), der(0x0c, Buffer.from('outrigger-test')))));
  const serial = randomBytes(8);
  serial[0] = ((serial[0] as number) & 0x7f) | 0x01;
  const now = Date.now();
  const san = der(0x30, der(0x82, Buffer.from('localhost')), der(0x87, Buffer.from([127, 0, 0, 1])));
  const tbs = der(
    0x30,
    der(0xa0, der(0x02, Buffer.from([2]))),
    der(0x02, serial),
    ecdsaSha256,
    name,
    der(0x30, utcTime(new Date(now - 3600_000)), utcTime(new Date(now + 2 * 86400_000))),
    name,
    publicKey.export({ type: 'spki', format: 'der' }),
    der(
      0xa3,
      der(
        0x30,
        der(0x30, oid('2.5.29.17'), der(0x04, san)),
        der(0x30, oid('2.5.29.19'), der(0x01, Buffer.from([0xff])), der(0x04, der(0x30, der(0x01, Buffer.from([0xff]))))),
      ),
    ),
  );
  const sig = sign('sha256', tbs, privateKey);
  const certDer = der(0x30, tbs, ecdsaSha256, der(0x03, Buffer.from([0]), sig));
  const b64 = certDer.toString('base64').replace(/.{1,64}/g, '$&\n');
  return { key: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, cert: `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n` };
}

/** openssl when it is there, else node:crypto; written to a temporary directory. */
function selfSigned(): { key: string; cert: string; certPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-tls-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  let pair: { key: string; cert: string };
  try {
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=outrigger-test', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'],
      { stdio: 'ignore', timeout: 20_000 },
    );
    pair = { key: readFileSync(keyPath, 'utf8'), cert: readFileSync(certPath, 'utf8') };
  } catch {
    pair = nodeCert();
    writeFileSync(certPath, pair.cert);
  }
  // Whichever made it, it must name the address the proxy dials.
  expect(new X509Certificate(pair.cert).checkIP('127.0.0.1')).toBe('127.0.0.1');
  return { ...pair, certPath };
}

// --- the upstreams and the proxy -------------------------------------------------------------

interface TlsUpstream {
  url: string;
  alpn: Array<string | false | undefined>;
  streams: number;
  tlsErrors: number;
}

async function tlsUpstream(key: string, cert: string): Promise<TlsUpstream> {
  const up: TlsUpstream = { url: '', alpn: [], streams: 0, tlsErrors: 0 };
  const server: Http2SecureServer = createSecureServer({ key, cert });
  const sessions = new Set<ServerHttp2Session>();
  server.on('session', (s: ServerHttp2Session) => {
    sessions.add(s);
    up.alpn.push(s.alpnProtocol);
    s.on('close', () => sessions.delete(s));
  });
  server.on('tlsClientError', () => up.tlsErrors++);
  server.on('stream', (stream, headers) => {
    up.streams++;
    let body = '';
    stream.on('data', (c: Buffer) => (body += c.toString()));
    stream.on('error', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'x-scheme': String(headers[':scheme']) }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'x-sum': '42' }));
      stream.end(`${String(stream.session?.alpnProtocol)} ${String(headers[':method'])} ${String(headers[':path'])} ${String(headers[':authority'])} ${body}`);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        server.close(() => r());
      }),
  );
  up.url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return up;
}

const PROTO = fileURLToPath(new URL('../fixtures/echo.proto', import.meta.url));
const Echo = (grpc.loadPackageDefinition(loader.loadSync(PROTO, { keepCase: true, defaults: true })) as any).outrigger.test.Echo;

async function grpcTlsUpstream(key: string, cert: string): Promise<string> {
  const server = new grpc.Server();
  server.addService(Echo.service, {
    Unary(call: any, cb: any) {
      cb(null, { text: `tls:${call.request.text}`, n: call.request.n + 1 });
    },
  });
  const creds = grpc.ServerCredentials.createSsl(null, [{ private_key: Buffer.from(key), cert_chain: Buffer.from(cert) }]);
  const port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', creds, (err, p) => (err ? reject(err) : resolve(p))));
  cleanups.push(() => {
    server.forceShutdown();
  });
  return `https://127.0.0.1:${port}`;
}

/** The CLI with NODE_EXTRA_CA_CERTS set to `ca` (or unset), whatever this process has. */
async function cli(cfg: Record<string, unknown>, ca: string | null): Promise<Cli> {
  const before = process.env.NODE_EXTRA_CA_CERTS;
  if (ca === null) delete process.env.NODE_EXTRA_CA_CERTS;
  else process.env.NODE_EXTRA_CA_CERTS = ca;
  // startCli copies process.env when it spawns, before its first await.
  const started = startCli(cfg, cleanups);
  if (before === undefined) delete process.env.NODE_EXTRA_CA_CERTS;
  else process.env.NODE_EXTRA_CA_CERTS = before;
  return await started;
}

function h2Get(url: string, path: string): Promise<{ head: IncomingHttpHeaders; body: string; trailers: IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const s = connect(url);
    s.on('error', reject);
    const st = s.request({ ':method': 'GET', ':path': path });
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    let body = '';
    st.on('response', (h) => (head = h));
    st.on('trailers', (t) => (trailers = t));
    st.on('data', (c: Buffer) => (body += c.toString()));
    st.on('error', (err) => {
      s.destroy();
      reject(err);
    });
    st.on('end', () => {
      s.close();
      resolve({ head, body, trailers });
    });
  });
}

describe('protocol h2: HTTP/2 over TLS to the upstream (the CLI as a child process)', () => {
  it('carries HTTP/1.1, h2c and gRPC clients to h2 upstreams whose certificate is trusted through NODE_EXTRA_CA_CERTS', async () => {
    const { key, cert, certPath } = selfSigned();
    const up = await tlsUpstream(key, cert);
    const g = await grpcTlsUpstream(key, cert);
    const proxy = await cli(
      {
        log: { accessLog: true },
        upstreams: { tls: { endpoints: [up.url], protocol: 'h2' }, g: { endpoints: [g], protocol: 'h2' } },
        routes: [
          { name: 'grpc', grpc: true, match: { pathPrefix: '/outrigger.test.Echo/' }, upstream: 'g' },
          { name: 'tls', match: { pathPrefix: '/' }, upstream: 'tls' },
        ],
      },
      certPath,
    );

    const h1 = await req(proxy.url, { method: 'POST', path: '/a?x=1', body: 'hello', headers: { 'content-type': 'text/plain' } });
    expect(h1.status).toBe(200);
    expect(h1.body).toBe(`h2 POST /a?x=1 ${new URL(up.url).host} hello`);
    expect(h1.headers['x-scheme']).toBe('https');
    expect(h1.headers['x-outrigger-attempts']).toBe('1');

    const h2 = await h2Get(proxy.url, '/b');
    expect(h2.head[':status']).toBe(200);
    expect(h2.body).toBe(`h2 GET /b ${new URL(up.url).host} `);
    expect(h2.trailers['x-sum']).toBe('42');
    // One TLS session, negotiated as h2 by ALPN, carried both requests.
    expect(up.alpn).toEqual(['h2']);
    expect(up.tlsErrors).toBe(0);

    const client = new Echo(`127.0.0.1:${proxy.port}`, grpc.credentials.createInsecure());
    cleanups.push(() => client.close());
    const res = await new Promise<{ text: string; n: number }>((resolve, reject) =>
      client.Unary({ text: 'hi', n: 1 }, (err: grpc.ServiceError | null, r: { text: string; n: number }) => (err ? reject(err) : resolve(r))),
    );
    expect(res).toEqual({ text: 'tls:hi', n: 2 });

    await waitFor(() => proxy.logs.filter((l) => l.access === true).length >= 3, { timeout: 5000, what: 'three access-log lines' });
    const access = proxy.logs.filter((l) => l.access === true);
    expect(access.map((l) => [l.route, l.status])).toEqual([
      ['tls', 200],
      ['tls', 200],
      ['grpc', 200],
    ]);
    expect(access[2]?.grpcStatus).toBe(0);
  });

  it('keeps Node’s certificate checks: without the CA the upstream is unavailable and no request reaches it', async () => {
    const { key, cert } = selfSigned();
    const up = await tlsUpstream(key, cert);
    const proxy = await cli(
      {
        upstreams: { tls: { endpoints: [up.url], protocol: 'h2' } },
        routes: [{ name: 'tls', match: { pathPrefix: '/' }, upstream: 'tls', retry: { attempts: 1, backoff: { base: '1ms', max: '2ms' } } }],
      },
      null,
    );
    const r = await req(proxy.url, { path: '/a' });
    expect(r.status).toBe(502);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    expect(up.streams).toBe(0);
    // The proxy aborted each handshake (a self-signed certificate), first try and retry.
    await waitFor(() => up.tlsErrors >= 2, { timeout: 5000, what: 'the upstream to see the handshakes fail' });
  });
});
