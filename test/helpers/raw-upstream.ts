// Raw TCP on both ends of an upgrade, for tests that need exact bytes: an upstream that
// answers each request head itself (its own WebSocket handshake, fake 101s, interim
// answers, keep-alive it never closes) and counts its open sockets; a client that writes
// bytes as given and reads response heads and WebSocket frames; and the few RFC 6455
// pieces both need (Sec-WebSocket-Accept, frames).
import { createHash, randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

export const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 section 4.2.2). */
export function acceptFor(key: string): string {
  return createHash('sha1').update(key + WS_GUID).digest('base64');
}

/** A fresh, valid Sec-WebSocket-Key. */
export function newKey(): string {
  return randomBytes(16).toString('base64');
}

export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;

/** One WebSocket frame; masked as a client must, unmasked as a server must. */
export function frame(opcode: number, payload: Buffer | string, masked: boolean, fin = true): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const len = data.length;
  const head: number[] = [(fin ? 0x80 : 0) | opcode];
  const m = masked ? 0x80 : 0;
  if (len < 126) head.push(m | len);
  else if (len < 65536) head.push(m | 126, len >> 8, len & 0xff);
  else {
    head.push(m | 127);
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(len));
    head.push(...b);
  }
  if (!masked) return Buffer.concat([Buffer.from(head), data]);
  const mask = randomBytes(4);
  const out = Buffer.alloc(len);
  for (let i = 0; i < len; i++) out[i] = (data[i] as number) ^ (mask[i & 3] as number);
  return Buffer.concat([Buffer.from(head), mask, out]);
}

export interface Frame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  payload: Buffer;
}

/** Incremental frame parser: push bytes, get whole frames back (unmasked). */
export class FrameReader {
  private buf: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: Frame[] = [];
    for (;;) {
      const b = this.buf;
      if (b.length < 2) return out;
      const b0 = b[0] as number;
      const b1 = b[1] as number;
      const masked = (b1 & 0x80) !== 0;
      let len = b1 & 0x7f;
      let off = 2;
      if (len === 126) {
        if (b.length < 4) return out;
        len = b.readUInt16BE(2);
        off = 4;
      } else if (len === 127) {
        if (b.length < 10) return out;
        len = Number(b.readBigUInt64BE(2));
        off = 10;
      }
      const maskAt = off;
      if (masked) off += 4;
      if (b.length < off + len) return out;
      const payload = Buffer.from(b.subarray(off, off + len));
      if (masked) for (let i = 0; i < len; i++) payload[i] = (payload[i] as number) ^ (b[maskAt + (i & 3)] as number);
      out.push({ fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, payload });
      this.buf = b.subarray(off + len);
    }
  }
}

export interface ParsedHead {
  /** The head up to (not including) the blank line, latin1. */
  head: string;
  /** The request line or the status line. */
  first: string;
  /** Lower-case names; repeated headers joined with ", ". */
  headers: Record<string, string>;
}

export function parseHead(head: string): ParsedHead {
  const lines = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const k = line.slice(0, i).trim().toLowerCase();
    const v = line.slice(i + 1).trim();
    headers[k] = headers[k] === undefined ? v : `${headers[k]}, ${v}`;
  }
  return { head, first: lines[0] ?? '', headers };
}

export interface RawRequest extends ParsedHead {
  method: string;
  path: string;
  socket: Socket;
  /** 1-based, over the upstream's life. */
  n: number;
  /** Bytes that came after the head in the same read(s) it arrived in. */
  rest: Buffer;
}

export interface RawUpstream {
  url: string;
  port: number;
  /** Request heads received, in order. */
  requests: RawRequest[];
  /** TCP connections accepted. */
  connections: number;
  /** Sockets to this upstream open right now. */
  openSockets(): number;
  /**
   * Called once per connection, with its first request head. From then on the socket is
   * the answer's: it attaches its own 'data' listener (synchronously, so nothing is missed)
   * and starts from `rest`.
   */
  answer: (r: RawRequest) => void;
  close(): Promise<void>;
}

export async function startRawUpstream(answer: RawUpstream['answer']): Promise<RawUpstream> {
  const sockets = new Set<Socket>();
  const up: RawUpstream = {
    url: '',
    port: 0,
    requests: [],
    connections: 0,
    openSockets: () => sockets.size,
    answer,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
  const server: Server = createServer((s) => {
    up.connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    let buf: Buffer = Buffer.alloc(0);
    const onData = (c: Buffer): void => {
      buf = Buffer.concat([buf, c]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      s.off('data', onData);
      const p = parseHead(buf.subarray(0, end).toString('latin1'));
      const [method = '', path = ''] = p.first.split(' ');
      const r: RawRequest = { ...p, method, path, socket: s, n: up.requests.length + 1, rest: Buffer.from(buf.subarray(end + 4)) };
      up.requests.push(r);
      up.answer(r);
    };
    s.on('data', onData);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  up.port = (server.address() as AddressInfo).port;
  up.url = `http://127.0.0.1:${up.port}`;
  return up;
}

/** The 101 a WebSocket server sends for a request head (correct Accept), plus extra header lines. */
export function switchingHead(r: ParsedHead, extra: string[] = []): string {
  const key = r.headers['sec-websocket-key'] ?? '';
  return ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Accept: ${acceptFor(key)}`, ...extra, '', ''].join('\r\n');
}

/** A client WebSocket handshake request, as bytes; `extra` header lines are added as given. */
export function wsHandshake(path: string, key: string, extra: string[] = []): string {
  return [`GET ${path} HTTP/1.1`, 'Host: app.local', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${key}`, 'Sec-WebSocket-Version: 13', ...extra, '', ''].join('\r\n');
}

/**
 * A raw client socket that collects everything it reads, so a test can wait for a response
 * head, a body, frames or the close, each with a bound.
 */
export class RawClient extends EventEmitter {
  buf: Buffer = Buffer.alloc(0);
  /** Everything read so far (never consumed). */
  all: Buffer = Buffer.alloc(0);
  ended = false;
  closed = false;
  readonly closedPromise: Promise<void>;

  private constructor(readonly socket: Socket) {
    super();
    socket.on('data', (c: Buffer) => {
      this.buf = Buffer.concat([this.buf, c]);
      this.all = Buffer.concat([this.all, c]);
      this.emit('change');
    });
    socket.on('end', () => {
      this.ended = true;
      this.emit('change');
    });
    socket.on('error', () => undefined);
    this.closedPromise = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.emit('change');
        resolve();
      }),
    );
  }

  static connect(port: number, timeoutMs = 10_000): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect(port, '127.0.0.1');
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error('connect timed out'));
      }, timeoutMs);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(new RawClient(s));
      });
      s.once('error', (err) => {
        clearTimeout(t);
        reject(err);
      });
    });
  }

  write(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Resolves once `take` returns a value (it may consume from `buf`); rejects after timeoutMs. */
  private until<T>(take: () => T | undefined, what: string, timeoutMs: number, failOnEnd = true): Promise<T> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const v = take();
        if (v === undefined) return false;
        cleanup();
        resolve(v);
        return true;
      };
      const onChange = (): void => {
        if (check()) return;
        if (this.closed || (failOnEnd && this.ended)) {
          cleanup();
          reject(new Error(`peer closed before ${what}; read: ${JSON.stringify(this.all.toString('latin1').slice(0, 500))}`));
        }
      };
      const t = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs}ms waiting for ${what}; read: ${JSON.stringify(this.all.toString('latin1').slice(0, 500))}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(t);
        this.off('change', onChange);
      };
      this.on('change', onChange);
      onChange();
    });
  }

  /** The next response head (consumed), with its status. */
  readHead(timeoutMs = 10_000): Promise<ParsedHead & { status: number }> {
    return this.until(
      () => {
        const end = this.buf.indexOf('\r\n\r\n');
        if (end === -1) return undefined;
        const p = parseHead(this.buf.subarray(0, end).toString('latin1'));
        this.buf = this.buf.subarray(end + 4);
        const m = /^HTTP\/1\.[01] (\d{3})/.exec(p.first);
        return { ...p, status: m ? Number(m[1]) : 0 };
      },
      'a response head',
      timeoutMs,
    );
  }

  /** Exactly `n` body bytes (consumed). */
  readBytes(n: number, timeoutMs = 10_000): Promise<Buffer> {
    return this.until(
      () => {
        if (this.buf.length < n) return undefined;
        const out = Buffer.from(this.buf.subarray(0, n));
        this.buf = this.buf.subarray(n);
        return out;
      },
      `${n} bytes`,
      timeoutMs,
    );
  }

  /** The next `count` WebSocket frames (consumed). */
  readFrames(count: number, timeoutMs = 10_000): Promise<Frame[]> {
    const reader = new FrameReader();
    const got: Frame[] = [];
    return this.until(
      () => {
        if (this.buf.length > 0) {
          got.push(...reader.push(this.buf));
          this.buf = Buffer.alloc(0);
        }
        return got.length >= count ? got : undefined;
      },
      `${count} frames`,
      timeoutMs,
    );
  }

  /** Resolves once the socket has closed, or rejects after timeoutMs. */
  waitClosed(timeoutMs = 10_000): Promise<void> {
    return this.until(() => (this.closed ? true : undefined), 'the close', timeoutMs, false).then(() => undefined);
  }

  /** Resolves once the peer has sent FIN or the socket has closed. */
  waitEnded(timeoutMs = 10_000): Promise<void> {
    return this.until(() => (this.ended || this.closed ? true : undefined), 'FIN or close', timeoutMs).then(() => undefined);
  }

  close(): void {
    this.socket.destroy();
  }
}
