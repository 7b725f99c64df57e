// The per-exchange types every layer shares, below both policies/ and proxy/: one
// Exchange per client request or upgrade handshake, holding what the policy layers share
// (deadline, attempt count, chosen endpoint, body) and the exits every layer must respect
// (client gone, deadline passed). Config lives in the compiled route, built once per
// config load; an Exchange only points at it. The policies see a route through
// RouteContext, the transports through their own richer type (proxy/exchange.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex, Readable } from 'node:stream';
import type { EffectiveRoute } from '../config/load.js';
import type { FallbackOn } from '../config/schema.js';
import { ControlFlowError } from '../errors.js';
import type { RetryReason, TimeoutMetricKind } from './outcome.js';

/**
 * What the header phase produces: an upstream response (HTTP, or the answer to an upgrade
 * handshake) or one the proxy made. The policy layers see only this, whatever the transport.
 */
export interface Reply {
  readonly status: number;
  /** The Retry-After header value, if the upstream sent one. */
  readonly retryAfter: string | null;
  /** The grpc-status of a trailers-only response (gRPC retry.on and breaker.failOn); absent or null otherwise. */
  readonly grpcStatus?: number | null;
  /** Writes the response to the client (streams the body for upstream replies). */
  send(ex: Exchange): void;
  /** Throws the reply away without sending it (a retried attempt, a replaced 5xx). */
  discard(): void;
  /**
   * The response head as the client will get it (lower-case names, flat name/value pairs,
   * hop-by-hop fields removed). Only replies that can be tapped have one.
   */
  readonly responseHeaders?: readonly string[];
  /**
   * Copies the body into `tap` while send() streams it to the client, without holding any
   * of it back. Called before send(). Returns false when the body cannot be proven whole
   * (its end would look the same as a cut: a read-until-close body) or it is too late.
   * Absent on replies that are not an upstream HTTP response (the proxy's own, upgrades).
   */
  tap?(tap: BodyTap): boolean;
}

/**
 * Receives a copy of a response body as it streams (the stale-if-error cache). Exactly one
 * of end() and abort() is called, once. Chunks are the transport's: copy what you keep.
 */
export interface BodyTap {
  data(chunk: Buffer): void;
  /** The whole body arrived, its length checked against the response's framing. */
  end(): void;
  /** The body did not arrive whole: cut by the upstream, the client gone, discarded, timed out. */
  abort(): void;
}

/** A layer of the policy stack: the same shape at every level, composed once per route. */
export type Handler<R extends RouteContext = RouteContext> = (ex: Exchange<R>) => Promise<Reply>;

/** What the policy layers count on a route (admin/metrics.ts RouteMetrics implements it). */
export interface RouteMetricsPort {
  readonly budgetExhausted: { inc(): void };
  readonly overload: { inc(): void };
  retry(reason: RetryReason): void;
  fallback(trigger: FallbackOn): void;
  timeout(kind: TimeoutMetricKind): void;
  /** A response served from the stale-if-error cache (outrigger_stale_served_total). */
  staleServed(): void;
}

/** A byte gauge shared by every stale-if-error cache (outrigger_stale_cache_bytes). */
export interface ByteGaugePort {
  inc(bytes: number): void;
  dec(bytes: number): void;
}

/** A route as the policy layers see it; built once per config load. */
export interface RouteContext {
  readonly name: string;
  readonly config: EffectiveRoute;
  /** Endpoint choice: the first attempt's, and the next one's after a failure. */
  readonly upstream: { pick(): number; after(index: number): number };
  readonly budget: { recordRequest(): void; tryAcquire(): boolean };
  readonly metrics: RouteMetricsPort;
}

/** The client went away; unwinds the stack without counting against anything. */
export class ClientGoneError extends ControlFlowError {
  constructor() {
    super('client went away');
    this.name = 'ClientGoneError';
  }
}

/** An upgrade handshake's client side: what the Upgrade asked for, and the raw socket. */
export interface UpgradeRequest {
  /** The Upgrade token, lower case ("websocket", or a protocol the route lists). */
  readonly token: string;
  readonly socket: Duplex;
  /** Bytes the client sent after its handshake (they belong to the upgraded protocol). */
  readonly head: Buffer;
  /** Called once the client has its 101: the handshake exchange is over. */
  switched(): void;
  /**
   * Hands the established connection to the tracker (drain, caps, metrics); `cut` ends it
   * at once, with a close code where the protocol has one. Returns what the connection
   * calls once, when it has ended, with why and what to log.
   */
  register(cut: (code: number, text: string) => void): (reason: string, info: Record<string, unknown>) => void;
}

export class Exchange<R extends RouteContext = RouteContext> {
  readonly start = performance.now();
  /** performance.now() deadline for the header phase; 0 when the route has none. */
  deadline = 0;
  attempts = 0;
  /** Index into route.upstream.endpoints of the last attempt, -1 before the first. */
  endpoint = -1;
  upstreamPath = '/';
  /** The normalized request path (no query), as routed and logged. */
  path = '/';
  /** The proxy's pseudonym for Via (http.via). */
  via = 'outrigger';
  /** Host as the client sent it (Host header or absolute-form URL). */
  authority = '';
  /** Built on the first attempt, so a request refused before one never pays for it. */
  upstreamHeaders: string[] | null = null;
  /** null: no body; Buffer: buffered and replayable; Readable: streamed once. */
  body: Buffer | Readable | null = null;
  clientGone = false;
  finished = false;
  fallbackTrigger: FallbackOn | null = null;
  errorCode: string | null = null;
  status = 0;
  bytesOut = 0;
  /**
   * Some byte of the request may have reached an upstream: an attempt got onto a socket and
   * failed other than by connect-failure or refused-stream, or got a response. Read by the
   * dead-letter layer (delivery `unknown` rather than `not-sent`).
   */
  maybeSent = false;
  /** Set when the request was dead-lettered: the id for `x-outrigger-dead-letter`. */
  deadLetterId: string | null = null;
  /** The upstream broke off mid-body and the proxy cut the client response. */
  truncated = false;
  /** A gRPC call (content-type application/grpc*): errors are trailers-only, retries follow the gRPC rules. */
  grpc = false;
  /** The call's grpc-status as the client got it (headers or trailers); null when none. */
  grpcStatus: number | null = null;
  /** performance.now() deadline from the client's grpc-timeout; 0 when none. Caps `deadline`. */
  grpcDeadline = 0;
  /**
   * A copy of a streamed gRPC request body, kept up to retry.bufferBody while it is sent:
   * undefined before any attempt read it, null once it outgrew the limit.
   */
  replay: Buffer[] | null | undefined = undefined;
  /** Aborts what the exchange is waiting on now (an attempt, a backoff, a queue slot). */
  cancel: ((err: Error) => void) | null = null;
  private done: (() => void) | null = null;
  private donePromise: Promise<void> | null = null;

  /** The runtime this request started under; its pools stay open until we finish (Runtime.retire). */
  runtime: { release(): void } | null = null;
  /** Set for an upgrade handshake: the attempt at the bottom of the stack is the handshake. */
  upgrade: UpgradeRequest | null = null;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly route: R,
    readonly method: string,
    readonly requestId: string,
    /** The listener's state: while it drains, responses carry `connection: close`. */
    private readonly server: { readonly draining: boolean },
  ) {
    const t = route.config.timeout;
    if (t > 0) this.deadline = this.start + t;
  }

  /** Read when the response is sent, so a response that starts during the drain gets it too. */
  get closeConnection(): boolean {
    // HTTP/2 has no Connection header (RFC 9113 8.2.2): a draining session gets a GOAWAY instead.
    return this.server.draining && this.req.httpVersionMajor !== 2;
  }

  /** Milliseconds left before the deadline; Infinity without one. */
  remaining(): number {
    return this.deadline === 0 ? Infinity : this.deadline - performance.now();
  }

  /** Resolves when the response has ended or the client has gone. */
  completion(): Promise<void> {
    if (this.finished) return Promise.resolve();
    this.donePromise ??= new Promise<void>((resolve) => {
      this.done = resolve;
    });
    return this.donePromise;
  }

  /** Called once, when the response ended or the client went away. */
  markFinished(): boolean {
    if (this.finished) return false;
    this.finished = true;
    this.done?.();
    return true;
  }
}
