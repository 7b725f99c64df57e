// The HTTP/2 sessions of one upstream endpoint (protocol h2c or h2), over node:http2. A
// stream goes on the first live session with room under the peer's
// SETTINGS_MAX_CONCURRENT_STREAMS; when every session is full another is opened, up to the
// upstream's maxConnections (Envoy's HTTP/2 pool does the same). Past that, streams go on
// the least busy session, where nghttp2 holds them until a slot frees (it queues streams
// beyond the peer's limit rather than refusing them). A session is dropped when the peer
// sends GOAWAY or the connection closes, and closed after keepAliveTimeout without activity.
import { connect, type ClientHttp2Session, type ClientHttp2Stream, type OutgoingHttpHeaders, type SecureClientSessionOptions } from 'node:http2';
import type { UpstreamConfig } from '../config/schema.js';

/** The peer's stream limit before its SETTINGS arrive: RFC 9113 recommends at least 100. */
const ASSUMED_STREAMS = 100;

interface Live {
  readonly session: ClientHttp2Session;
  /** Streams opened on it and not yet closed. */
  open: number;
}

export class H2Client {
  /** Live sessions, oldest first: new streams fill the oldest with room. */
  private live: Live[] = [];

  constructor(
    readonly origin: string,
    private readonly settings: UpstreamConfig,
  ) {}

  /** Opens a stream on a session with room, opening a session when there is none. Throws when node refuses at once. */
  request(headers: OutgoingHttpHeaders, endStream: boolean, waitForTrailers: boolean): { session: ClientHttp2Session; stream: ClientHttp2Stream } {
    const l = this.pick();
    const stream = l.session.request(headers, { endStream, waitForTrailers });
    l.open++;
    stream.once('close', () => l.open--);
    return { session: l.session, stream };
  }

  private pick(): Live {
    let least: Live | null = null;
    for (const l of this.live) {
      const s = l.session;
      if (s.closed || s.destroyed) continue;
      if (l.open < limitOf(s)) return l;
      if (least === null || l.open < least.open) least = l;
    }
    if (least === null || this.live.length < this.settings.maxConnections) return this.open();
    return least;
  }

  private open(): Live {
    const opts: SecureClientSessionOptions = { settings: { enablePush: false }, maxSessionMemory: 64 };
    if (this.settings.protocol === 'h2') opts.ALPNProtocols = ['h2'];
    const session = connect(this.origin, opts);
    const l: Live = { session, open: 0 };
    this.live.push(l);
    const forget = () => {
      const i = this.live.indexOf(l);
      if (i >= 0) this.live.splice(i, 1);
    };
    // Streams opened before the connection fails get the error themselves (attempts classify it).
    session.on('error', forget);
    session.on('close', forget);
    session.on('goaway', () => {
      forget();
      // Streams the peer accepted finish; node closes the session once they have.
      if (!session.closed) session.close();
    });
    const connectTimer = setTimeout(() => {
      if (session.connecting) session.destroy(Object.assign(new Error(`connect timeout after ${this.settings.connectTimeout}ms`), { code: 'UND_ERR_CONNECT_TIMEOUT' }));
    }, this.settings.connectTimeout);
    connectTimer.unref();
    session.once('connect', () => clearTimeout(connectTimer));
    session.once('close', () => clearTimeout(connectTimer));
    // Idle sessions are reaped (undici 7 leaves them open): no frame for keepAliveTimeout and
    // no stream open closes it; a new request opens a new one. The listener is `on`, not the
    // setTimeout callback (node adds that with `once`): the timer fires again after the next
    // activity, and a session whose timer once fired while a long stream was open must still
    // be reaped when it goes idle later.
    session.setTimeout(this.settings.keepAliveTimeout);
    session.on('timeout', () => {
      if (l.open === 0 && !session.closed) {
        forget();
        session.close();
      }
    });
    return l;
  }

  /** Closes every session once its streams are done. */
  close(): Promise<void> {
    const all = this.live;
    this.live = [];
    return Promise.all(all.map((l) => (l.session.destroyed ? undefined : new Promise<void>((resolve) => l.session.close(() => resolve()))))).then(() => undefined);
  }

  destroy(): Promise<void> {
    const all = this.live;
    this.live = [];
    for (const l of all) l.session.destroy();
    return Promise.resolve();
  }
}

function limitOf(s: ClientHttp2Session): number {
  // Before the peer's SETTINGS arrive node reports the protocol's unbounded default.
  const n = s.remoteSettings.maxConcurrentStreams;
  return n === undefined || n > 0xfffffff ? ASSUMED_STREAMS : n;
}
