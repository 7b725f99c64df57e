// One HTTP/2 session per upstream endpoint (protocol h2c or h2), over node:http2: opened on
// first use, replaced when the peer sends GOAWAY or the connection closes, and closed after
// the upstream's keepAliveTimeout without activity. Streams multiplex on it; node:http2
// keeps to the peer's SETTINGS_MAX_CONCURRENT_STREAMS and queues none past it (the stream
// fails with REFUSED_STREAM, which retry treats as never sent).
import { connect, type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import type { UpstreamConfig } from '../config/schema.js';

export class H2Client {
  private session: ClientHttp2Session | null = null;

  constructor(
    readonly origin: string,
    private readonly settings: UpstreamConfig,
  ) {}

  /** The live session, opening one when there is none (or the last is going away). */
  get(): ClientHttp2Session {
    const s = this.session;
    if (s !== null && !s.closed && !s.destroyed) return s;
    const opts: SecureClientSessionOptions = { settings: { enablePush: false }, maxSessionMemory: 64 };
    if (this.settings.protocol === 'h2') opts.ALPNProtocols = ['h2'];
    const next = connect(this.origin, opts);
    this.session = next;
    const forget = () => {
      if (this.session === next) this.session = null;
    };
    // Streams opened before the connection fails get the error themselves (attempts classify it).
    next.on('error', forget);
    next.on('close', forget);
    next.on('goaway', () => {
      forget();
      // Streams the peer accepted finish; node closes the session once they have.
      if (!next.closed) next.close();
    });
    const connectTimer = setTimeout(() => {
      if (next.connecting) next.destroy(Object.assign(new Error(`connect timeout after ${this.settings.connectTimeout}ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
    }, this.settings.connectTimeout);
    connectTimer.unref();
    next.once('connect', () => clearTimeout(connectTimer));
    next.once('close', () => clearTimeout(connectTimer));
    // Idle sessions are reaped (undici 7 leaves them open): no frame for keepAliveTimeout and
    // no stream open closes it; a new request opens a new one. The listener is `on`, not the
    // setTimeout callback (node adds that with `once`): the timer fires again after the next
    // activity, and a session whose timer once fired while a long stream was open must still
    // be reaped when it goes idle later.
    next.setTimeout(this.settings.keepAliveTimeout);
    next.on('timeout', () => {
      if ((this.open.get(next) ?? 0) === 0 && !next.closed) {
        forget();
        next.close();
      }
    });
    return next;
  }

  /** Streams open per session, for the idle reaper. */
  private readonly open = new WeakMap<ClientHttp2Session, number>();

  /** Opens a stream on the live session. Throws when node refuses at once (a session already failed). */
  request(headers: OutgoingHttpHeaders, endStream: boolean): { session: ClientHttp2Session; stream: ClientHttp2Stream } {
    const session = this.get();
    const stream = session.request(headers, { endStream });
    this.open.set(session, (this.open.get(session) ?? 0) + 1);
    stream.once('close', () => this.open.set(session, (this.open.get(session) ?? 1) - 1));
    return { session, stream };
  }

  close(): Promise<void> {
    const s = this.session;
    this.session = null;
    if (s === null || s.destroyed) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }

  destroy(): Promise<void> {
    const s = this.session;
    this.session = null;
    s?.destroy();
    return Promise.resolve();
  }
}

