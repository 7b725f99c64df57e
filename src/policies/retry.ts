// Retry: decides, at response headers or on failure, whether to try again. A retry needs
// all of: a failure the route's `on` list names, a method that is safe to repeat (or a
// failure that provably never reached the upstream), a replayable body, attempts left,
// budget left, and a delay (backoff or Retry-After) that ends before the deadline.
import type { Readable } from 'node:stream';
import type { EffectiveRoute } from '../config/load.js';
import { GRPC_STATUS_ON, type GrpcStatusOn, type RetryOn } from '../config/schema.js';
import { ProxyError } from '../errors.js';
import { parseRetryAfter } from '../exchange/retry-after.js';
import { ClientGoneError, type Exchange, type Handler, type Reply, type RouteContext } from '../exchange/exchange.js';
import { backoffDelay, type DecorrelatedState } from './backoff.js';
import { AttemptError, InvalidUpgradeError, type FailureKind, type RetryReason } from '../exchange/outcome.js';

/** The route's retry settings, compiled once into sets and flags. */
export class RetryPlan {
  readonly attempts: number;
  private readonly on: ReadonlySet<RetryOn>;
  private readonly statuses: ReadonlySet<number>;
  private readonly methods: ReadonlySet<string>;
  readonly idempotencyHeader: string;
  /** grpc-status values retried (a trailers-only response), to their reason label. */
  private readonly grpcOn = new Map<number, RetryReason>();
  private readonly grpcMethods: ReadonlySet<string>;

  constructor(readonly settings: EffectiveRoute['retry']) {
    this.attempts = settings.attempts;
    this.on = new Set(settings.on);
    for (const name of settings.on) {
      if (name in GRPC_STATUS_ON) this.grpcOn.set(GRPC_STATUS_ON[name as GrpcStatusOn], name.replace('-', '_') as RetryReason);
    }
    this.grpcMethods = new Set(settings.grpcMethods);
    this.statuses = new Set(settings.statuses);
    this.methods = new Set(settings.methods);
    this.idempotencyHeader = settings.idempotencyHeader;
  }

  /** Why a reply should be retried: for a gRPC call its trailers-only grpc-status, else its HTTP status. */
  reasonForReply(ex: Exchange, reply: Reply): RetryReason | null {
    if (ex.grpc) {
      const g = reply.grpcStatus;
      if (g !== undefined && g !== null) return this.grpcOn.get(g) ?? null;
    }
    return this.reasonForStatus(reply.status);
  }

  /** Why a response with this status should be retried, or null. */
  reasonForStatus(status: number): RetryReason | null {
    if (status < 500 && this.statuses.size === 0) return null;
    if ((status === 502 || status === 503 || status === 504) && this.on.has('gateway-error')) return 'gateway_error';
    if (status >= 500 && this.on.has('5xx')) return '5xx';
    if (this.statuses.has(status) && this.on.has('retriable-status')) return 'retriable_status';
    return null;
  }

  /** Why a failed attempt should be retried, or null. A per-try timeout counts as reset. */
  reasonForFailure(err: AttemptError): RetryReason | null {
    if (err.answered) return null;
    switch (err.kind) {
      case 'connect-failure':
        return this.on.has('connect-failure') ? 'connect_failure' : null;
      case 'refused-stream':
        return this.on.has('refused-stream') ? 'refused_stream' : null;
      case 'reset':
        return this.on.has('reset') ? 'reset' : null;
      case 'timeout':
        return err.timeoutKind === 'per_try' && this.on.has('reset') ? 'per_try_timeout' : null;
      case 'client-abort':
        return null;
    }
  }

  /** Safe to send again: an idempotent method, an idempotency key, or never reached the upstream. */
  methodAllows(ex: Exchange, failure: FailureKind | null): boolean {
    // Every gRPC call is a POST: the HTTP method rule does not apply, grpcMethods may narrow it.
    if (ex.grpc) return this.grpcMethods.size === 0 || this.grpcMethods.has(ex.path) || failure === 'connect-failure' || failure === 'refused-stream';
    if (this.methods.has(ex.method)) return true;
    if (failure === 'connect-failure' || failure === 'refused-stream') return true;
    return ex.req.headers[this.idempotencyHeader] !== undefined;
  }
}

/** A streamed body can be sent again only if not a byte of it was read. */
function bodyReplayable(ex: Exchange): boolean {
  const b = ex.body;
  if (b === null || Buffer.isBuffer(b)) return true;
  const s = b as Readable;
  if (!s.readableDidRead && !s.destroyed) return true;
  // A gRPC call whose client finished sending within retry.bufferBody: its copy is sent again.
  if (ex.grpc && Array.isArray(ex.replay) && ex.req.complete) {
    ex.body = Buffer.concat(ex.replay);
    return true;
  }
  return false;
}

/** Maps a final attempt failure to the error the client sees. */
export function finalError(err: AttemptError): ProxyError {
  if (err instanceof InvalidUpgradeError) return new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE', `the upstream's answer to the upgrade is invalid: ${err.detail}`);
  if (err.kind === 'timeout') return new ProxyError('OUTRIGGER_TIMEOUT', err.timeoutKind === 'per_try' ? 'the upstream did not answer within the per-try timeout' : undefined);
  const detail = err.kind === 'connect-failure' ? 'connection failed' : err.kind === 'refused-stream' ? 'connection closed before the request was sent' : 'connection reset before response headers';
  return new ProxyError('OUTRIGGER_UPSTREAM_UNAVAILABLE', `the upstream could not be reached: ${detail}`);
}

export function retryLayer<R extends RouteContext>(plan: RetryPlan, next: Handler<R>): Handler<R> {
  return async function retry(ex: Exchange<R>): Promise<Reply> {
    const route = ex.route;
    route.budget.recordRequest();
    let retries = 0;
    let jitterState: DecorrelatedState = undefined;
    for (;;) {
      let reply: Reply | null = null;
      let failure: AttemptError | null = null;
      try {
        reply = await next(ex);
      } catch (err) {
        // Anything else (a refusing breaker's BreakerOpenError among them) is final.
        if (err instanceof AttemptError) failure = err;
        else throw err;
      }
      if (ex.clientGone) {
        reply?.discard();
        throw new ClientGoneError();
      }
      if (failure !== null && failure.kind === 'client-abort') throw new ClientGoneError();

      const reason = reply !== null ? plan.reasonForReply(ex, reply) : plan.reasonForFailure(failure as AttemptError);
      let delay = -1;
      if (
        reason !== null &&
        retries < plan.attempts &&
        plan.methodAllows(ex, failure?.kind ?? null) &&
        bodyReplayable(ex)
      ) {
        [delay, jitterState] = retryDelay(ex, plan, reply, retries + 1, jitterState);
        if (delay >= 0 && !route.budget.tryAcquire()) {
          route.metrics.budgetExhausted.inc();
          delay = -1;
        }
      }
      if (delay < 0) {
        if (reply !== null) return reply;
        throw finalError(failure as AttemptError);
      }
      reply?.discard();
      route.metrics.retry(reason as RetryReason);
      retries++;
      if (delay > 0) await sleep(ex, delay);
      if (ex.clientGone) throw new ClientGoneError();
      ex.endpoint = route.upstream.after(ex.endpoint);
    }
  };
}

/**
 * Delay before retry n in ms, or -1 when the retry must not happen (Retry-After too long,
 * past the deadline), with the jitter state to carry to the next retry.
 */
function retryDelay(ex: Exchange, plan: RetryPlan, reply: Reply | null, n: number, state: DecorrelatedState): [number, DecorrelatedState] {
  let delay: number;
  let nextState = state;
  const s = plan.settings;
  const ra = reply !== null && (reply.status === 429 || reply.status === 503) && s.retryAfter.honor ? reply.retryAfter : null;
  const ms = ra ? parseRetryAfter(ra) : null;
  if (ms !== null) {
    // An unparseable Retry-After is ignored (backoff applies); a too-long one makes the response final.
    if (ms > s.retryAfter.max) return [-1, state];
    delay = ms;
  } else {
    [delay, nextState] = backoffDelay(n, s.backoff, state);
  }
  // Never start a retry whose wait would end after the deadline.
  if (ex.deadline !== 0 && performance.now() + delay >= ex.deadline) return [-1, state];
  return [delay, nextState];
}

function sleep(ex: Exchange, ms: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const t = setTimeout(() => {
      ex.cancel = null;
      resolve();
    }, ms);
    ex.cancel = () => {
      clearTimeout(t);
      ex.cancel = null;
      resolve();
    };
  });
}
