// Fallback: when a listed trigger fires, the client gets the route's configured response
// (built once per config) with `x-outrigger-fallback: <trigger>`, instead of an error.
import type { EffectiveFallback } from '../config/load.js';
import type { FallbackOn } from '../config/schema.js';
import { ProxyError, encodeGrpcMessage, writeErrorResponse, type ErrorCode } from '../errors.js';
import type { Exchange, Handler, Reply, RouteContext } from '../exchange/exchange.js';

const TRIGGER_OF: Partial<Record<ErrorCode, FallbackOn>> = {
  OUTRIGGER_BREAKER_OPEN: 'breaker-open',
  OUTRIGGER_TIMEOUT: 'timeout',
  OUTRIGGER_UPSTREAM_UNAVAILABLE: 'upstream-unavailable',
  OUTRIGGER_OVERLOADED: 'overloaded',
};

/** The fallback trigger a failure of the stack is, or null (not a proxy error, or none of them). */
export function triggerOf(err: unknown): FallbackOn | null {
  return err instanceof ProxyError ? (TRIGGER_OF[err.code] ?? null) : null;
}

/** A response the proxy makes itself: a fallback or an error. */
export class StaticReply implements Reply {
  readonly retryAfter = null;
  constructor(
    readonly status: number,
    private readonly headers: readonly string[],
    private readonly body: Buffer,
    private readonly trigger: FallbackOn | null,
    /** A gRPC trailers-only fallback (fallback.grpc): its grpc-status. */
    readonly grpcStatus: number | null = null,
  ) {}

  send(ex: Exchange): void {
    const headers = this.headers.slice();
    if (this.trigger !== null) headers.push('x-outrigger-fallback', this.trigger);
    if (ex.deadLetterId !== null) headers.push('x-outrigger-dead-letter', ex.deadLetterId);
    if (ex.attempts > 0) headers.push('x-outrigger-attempts', String(ex.attempts));
    if (ex.closeConnection) headers.push('connection', 'close');
    ex.status = this.status;
    if (this.grpcStatus !== null) {
      ex.grpcStatus = this.grpcStatus;
      writeErrorResponse(ex.res, { status: this.status, headers, body: this.body, trailersOnly: true }, ex.method);
      return;
    }
    ex.bytesOut += this.body.length;
    ex.res.writeHead(this.status, headers);
    ex.res.end(ex.method === 'HEAD' ? undefined : this.body);
  }

  discard(): void {}
}

export class FallbackPlan {
  /** Whether this layer answers at all (EffectiveFallback.staticResponse); the stale-if-error cache may answer first. */
  readonly staticResponse: boolean;
  readonly triggers: ReadonlySet<FallbackOn>;
  private readonly on5xx: boolean;
  private readonly headers: string[];
  private readonly body: Buffer;

  constructor(readonly settings: EffectiveFallback) {
    this.staticResponse = settings.staticResponse;
    this.triggers = new Set(settings.on);
    this.on5xx = this.triggers.has('5xx');
    this.body = Buffer.from(settings.body);
    const headers: string[] = [];
    let hasLength = false;
    for (const [k, v] of Object.entries(settings.headers)) {
      const lower = k.toLowerCase();
      if (lower === 'content-length') hasLength = true;
      headers.push(lower, v);
    }
    if (!hasLength) headers.push('content-length', String(this.body.length));
    this.headers = headers;
    const g = settings.grpc;
    if (g !== undefined) this.grpcHeaders = ['content-type', 'application/grpc', 'grpc-status', String(g.status), 'grpc-message', encodeGrpcMessage(g.message)];
  }

  /** The trailers-only response of fallback.grpc, for gRPC calls; null without one. */
  private readonly grpcHeaders: string[] | null = null;
  private static readonly EMPTY = Buffer.alloc(0);

  /**
   * Whether this fallback answers the exchange: a gRPC call only with fallback.grpc (an
   * HTTP body would read as a protocol error to a gRPC client; it gets the mapped error).
   */
  answers(ex: Exchange): boolean {
    return !ex.grpc || this.grpcHeaders !== null;
  }

  replyFor(ex: Exchange, trigger: FallbackOn): StaticReply {
    ex.fallbackTrigger = trigger;
    const g = this.settings.grpc;
    if (ex.grpc && g !== undefined && this.grpcHeaders !== null) {
      ex.route.metrics.fallback(trigger);
      return new StaticReply(200, this.grpcHeaders, FallbackPlan.EMPTY, trigger, g.status);
    }
    ex.route.metrics.fallback(trigger);
    return new StaticReply(this.settings.status, this.headers, this.body, trigger);
  }

  /** The fallback for a proxy error, when its trigger is listed; null otherwise. */
  replyForError(ex: Exchange, err: ProxyError): StaticReply | null {
    const trigger = triggerOf(err);
    return trigger !== null && this.triggers.has(trigger) && this.answers(ex) ? this.replyFor(ex, trigger) : null;
  }

  layer<R extends RouteContext>(next: Handler<R>): Handler<R> {
    return (ex) =>
      next(ex).then(
        (reply) => {
          if (this.on5xx && reply.status >= 500 && !(reply instanceof StaticReply) && this.answers(ex)) {
            reply.discard();
            return this.replyFor(ex, '5xx');
          }
          return reply;
        },
        (err: unknown) => {
          const reply = err instanceof ProxyError ? this.replyForError(ex, err) : null;
          if (reply === null) throw err;
          return reply;
        },
      );
  }
}
