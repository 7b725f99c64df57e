// The proxy port: one TCP listener that speaks HTTP/1.1 and cleartext HTTP/2 with prior
// knowledge (h2c). node:http2 cannot fall back to HTTP/1 on cleartext, so a net server in
// front reads the first bytes of each connection: the HTTP/2 connection preface sends it to
// a node:http2 server, anything else to the HTTP/1.1 server, with the bytes read put back
// (`unshift`). Both servers run the same request handler (http.ts), so routing, the policy
// stack, metrics and logs treat the two alike.
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createH2Server, type Http2Server, type Http2Session, type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { parseListen } from '../util/units.js';

/** The HTTP/2 connection preface (RFC 9113 3.4). */
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** A connection that sends nothing for this long before its protocol is known is closed. */
const SNIFF_TIMEOUT = 10_000;

export interface H2Limits {
  maxConcurrentStreams: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE, the same budget as http.maxHeaderBytes. */
  maxHeaderListSize: number;
}

/** Whether a request came over HTTP/2 (the compat API's request). */
export function isHttp2(req: IncomingMessage | Http2ServerRequest): boolean {
  return req.httpVersionMajor === 2;
}

export class ProxyListener {
  readonly front: NetServer;
  readonly h2: Http2Server;
  private readonly sessions = new Set<Http2Session>();
  private closing = false;

  constructor(
    readonly h1: Server,
    handler: (req: IncomingMessage, res: ServerResponse) => void,
    limits: H2Limits,
  ) {
    this.h2 = createH2Server(
      {
        settings: { maxConcurrentStreams: limits.maxConcurrentStreams, maxHeaderListSize: limits.maxHeaderListSize, enablePush: false },
        maxSessionMemory: 64,
      },
      // The compat request and response stand in for IncomingMessage and ServerResponse;
      // the handler reads only what both have (see http.ts for where they differ).
      (req: Http2ServerRequest, res: Http2ServerResponse) => handler(req as unknown as IncomingMessage, res as unknown as ServerResponse),
    );
    this.h2.on('session', (s: Http2Session) => {
      this.sessions.add(s);
      s.once('close', () => this.sessions.delete(s));
      s.on('error', () => s.destroy());
      if (this.closing) s.close();
    });
    // A client that breaks the protocol gets a GOAWAY from node; nothing to crash on.
    this.h2.on('sessionError', () => {});
    this.front = createNetServer({ noDelay: true }, (socket) => this.sniff(socket));
    // node:http sets up its connection list (closeIdleConnections, closeAllConnections) and
    // the headersTimeout/requestTimeout checks on 'listening'; this server never listens
    // itself, since its sockets come from the front server.
    this.front.once('listening', () => h1.emit('listening'));
  }

  private sniff(socket: Socket): void {
    let got: Buffer | null = null;
    const cleanup = () => {
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('end', onEnd);
      socket.setTimeout(0);
      socket.off('timeout', onTimeout);
    };
    const onError = () => socket.destroy();
    const onEnd = () => socket.destroy();
    const onTimeout = () => socket.destroy();
    const onData = (chunk: Buffer) => {
      got = got === null ? chunk : Buffer.concat([got, chunk]);
      const n = Math.min(got.length, PREFACE.length);
      const h2 = got.subarray(0, n).equals(PREFACE.subarray(0, n));
      if (h2 && got.length < PREFACE.length) return;
      cleanup();
      socket.pause();
      socket.unshift(got);
      if (h2) this.h2.emit('connection', socket);
      else {
        this.h1.emit('connection', socket);
        // The HTTP/1.1 server reads the put-back bytes through 'data', which a paused socket never emits.
        socket.resume();
      }
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('end', onEnd);
    socket.setTimeout(SNIFF_TIMEOUT);
    socket.on('timeout', onTimeout);
  }

  listen(address: string): Promise<AddressInfo> {
    const { host, port } = parseListen(address) as { host: string; port: number };
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      this.front.once('error', onError);
      this.front.listen({ host, port }, () => {
        this.front.off('error', onError);
        resolve(this.front.address() as AddressInfo);
      });
    });
  }

  get listening(): boolean {
    return this.front.listening;
  }

  /** Stops accepting; resolves when every connection (HTTP/1.1 and HTTP/2) has closed. */
  close(): Promise<void> {
    this.closing = true;
    // Stops node:http's connection checks (the server is not listening: the error is expected).
    this.h1.close(() => {});
    return new Promise((resolve) => {
      if (!this.front.listening) {
        this.closeIdleConnections();
        return resolve();
      }
      this.front.close(() => resolve());
      this.closeIdleConnections();
    });
  }

  /** Idle HTTP/1.1 keep-alive sockets close; HTTP/2 sessions get a GOAWAY and close when their streams end. */
  closeIdleConnections(): void {
    this.h1.closeIdleConnections();
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  closeAllConnections(): void {
    this.h1.closeAllConnections();
    for (const s of this.sessions) s.destroy();
  }
}
