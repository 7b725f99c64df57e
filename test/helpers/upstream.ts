// A real node:http upstream for tests, with the faults the proxy must handle. Each
// request is answered by the current `behave` function, which tests swap as they go.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { readFileSync } from 'node:fs';

export interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
}

export type Behaviour = (req: IncomingMessage, res: ServerResponse, n: number, body: string) => void;

export interface TestUpstream {
  url: string;
  port: number;
  seen: SeenRequest[];
  behave: Behaviour;
  server: Server;
  /** Open sockets to this upstream right now. */
  openSockets(): number;
  close(): Promise<void>;
}

export const ok =
  (body = 'ok', status = 200, headers: Record<string, string> = {}): Behaviour =>
  (_req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body), ...headers });
    res.end(body);
  };

/** Fails the first `count` requests with `status`, then answers 200. */
export const failFirst =
  (count: number, status = 503, headers: Record<string, string> = {}): Behaviour =>
  (req, res, n) =>
    n <= count ? ok(`fail ${n}`, status, headers)(req, res, n, '') : ok(`ok ${n}`)(req, res, n, '');

/** Never answers. */
export const hang: Behaviour = () => {};

/** Destroys the socket before sending any response bytes. */
export const resetBeforeHeaders: Behaviour = (req) => {
  req.socket.destroy();
};

/** Sends headers and part of the body, then destroys the socket. */
export const resetMidBody: Behaviour = (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
  res.write('partial-');
  setTimeout(() => res.socket?.destroy(), 50);
};

/** Sends a body in chunks `gapMs` apart. */
export const slowBody =
  (chunks: number, gapMs: number): Behaviour =>
  (_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let i = 0;
    const t = setInterval(() => {
      if (res.destroyed) return clearInterval(t);
      res.write(`chunk${i}\n`);
      if (++i >= chunks) {
        clearInterval(t);
        res.end();
      }
    }, gapMs);
  };

export async function startUpstream(behave: Behaviour = ok()): Promise<TestUpstream> {
  const seen: SeenRequest[] = [];
  const sockets = new Set<Socket>();
  let n = 0;
  const up: Partial<TestUpstream> = { seen, behave };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString();
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body });
      n++;
      (up.behave as Behaviour)(req, res, n, body);
    });
  });
  server.keepAliveTimeout = 10_000;
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return Object.assign(up, {
    url: `http://127.0.0.1:${port}`,
    port,
    server,
    openSockets: () => sockets.size,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  }) as TestUpstream;
}

/** A loopback port with nothing listening on it (connection refused). */
export async function refusedPort(): Promise<number> {
  // Below the kernel's ephemeral range, which every test listener (port 0) draws from: a
  // port freed inside that range can be handed to another test's server moments later.
  const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || 32768;
  for (let i = 0; i < 50; i++) {
    const port = 20000 + Math.floor(Math.random() * Math.max(1, low - 20000));
    const refused = await new Promise<boolean>((resolve) => {
      const c = connect(port, '127.0.0.1');
      c.once('connect', () => {
        c.destroy();
        resolve(false);
      });
      c.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
    });
    if (refused) return port;
  }
  throw new Error('no refused port found below the ephemeral range in 50 tries');
}
