// Circuit breaker: a thin wrapper over cockatiel's CircuitBreakerPolicy with its
// ConsecutiveBreaker or SamplingBreaker. The wrapper adds what a proxy needs around it:
// the failOn vocabulary, fail-fast while a half-open probe is out, the time until the
// next probe (for retry-after and /health), and transition hooks for logs and metrics.
import {
  BrokenCircuitError,
  type CircuitBreakerPolicy,
  CircuitState,
  ConsecutiveBreaker,
  ConstantBackoff,
  ExponentialBackoff,
  IsolatedCircuitError,
  SamplingBreaker,
  circuitBreaker,
  handleWhen,
  noJitterGenerator,
  type IBackoff,
  type IBackoffFactory,
  type IDisposable,
  type IHalfOpenAfterBackoffContext,
} from 'cockatiel';
import type { EffectiveBreaker } from '../config/load.js';
import { GRPC_STATUS_ON, type GrpcStatusOn } from '../config/schema.js';
import { ControlFlowError, ProxyError } from '../errors.js';
import { AttemptError, type FailureKind } from '../exchange/outcome.js';
import type { Exchange, Handler, Reply, RouteContext } from '../exchange/exchange.js';

export type BreakerState = 'closed' | 'open' | 'half-open' | 'isolated';
export const BREAKER_STATES: readonly BreakerState[] = ['closed', 'open', 'half-open', 'isolated'];

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'isolated',
};

export interface BreakerHooks {
  onTransition(breaker: Breaker, from: BreakerState, to: BreakerState): void;
  onReject(breaker: Breaker): void;
}

/**
 * Thrown when the breaker refuses a call: already the client's OUTRIGGER_BREAKER_OPEN
 * (retry-after included), so the layers above pass it on unchanged and a rejection builds
 * one error, not two. Never retried: the retry layer retries attempt failures only.
 */
export class BreakerOpenError extends ProxyError {
  constructor(readonly retryAfterSeconds: number) {
    super('OUTRIGGER_BREAKER_OPEN', undefined, retryAfterSeconds);
  }
}

/**
 * A half-open probe that ended without telling anything about the upstream: the client
 * left or aborted its upload, its handshake was invalid, or the proxy failed. cockatiel
 * counts an error its policy does not handle as a success, which would close the breaker
 * on an upstream that may still be failing. So the probe's error travels through cockatiel
 * wrapped in this (handled) error, and the wrapper below undoes the failure it records:
 * the breaker stays half-open and the next request is the probe.
 */
class NoVerdict extends ControlFlowError {
  constructor(readonly inner: unknown) {
    super('half-open probe ended without a verdict');
    this.name = 'NoVerdict';
  }
}

/** An attempt outcome that says something about the upstream (a verdict, either way). */
function isUpstreamVerdict(err: unknown): boolean {
  return err instanceof AttemptError && err.kind !== 'client-abort';
}

/** Records the open time cockatiel chose, so we can say when the probe will go out. */
class RecordingBackoff implements IBackoff<IHalfOpenAfterBackoffContext> {
  readonly duration: number;
  constructor(
    private readonly inner: IBackoff<IHalfOpenAfterBackoffContext>,
    private readonly owner: Breaker,
    immediate = false,
  ) {
    // Damping (flapping.damp) stretches each open time chosen while the breaker flaps.
    this.duration = immediate ? 0 : inner.duration * owner.dampFactor;
    owner.openForMs = this.duration;
  }
  next(ctx: IHalfOpenAfterBackoffContext): IBackoff<IHalfOpenAfterBackoffContext> {
    // A probe without a verdict re-opens with no wait and without growing the open time.
    if ('error' in ctx.result && ctx.result.error instanceof NoVerdict) {
      this.owner.noVerdictReopen = true;
      return new RecordingBackoff(this.inner, this.owner, true);
    }
    return new RecordingBackoff(this.inner.next(ctx), this.owner);
  }
}

export interface BreakerSnapshot {
  name: string;
  routes: string[];
  state: BreakerState;
  since: string;
  consecutiveFailures: number;
  opens: number;
  retryAfterSeconds: number | null;
}

export class Breaker {
  readonly policy: CircuitBreakerPolicy;
  readonly routes: string[] = [];
  state: BreakerState = 'closed';
  since = new Date();
  opens = 0;
  /**
   * Grows by one on every transition to closed (after open, half-open or isolated): what
   * was stored under an older epoch predates the last outage (the stale-if-error cache).
   */
  epoch = 0;
  private failuresInARow = 0;
  private consecutive: ConsecutiveBreaker | null = null;
  /** @internal set by RecordingBackoff */
  openForMs = 0;
  /** Multiplies the open time; above 1 only while flapping with flapping.damp on. */
  dampFactor = 1;
  /** @internal set by RecordingBackoff: cockatiel's next 'open' undoes a probe without a verdict. */
  noVerdictReopen = false;
  private openedAt = 0;
  private isolation: IDisposable | null = null;
  private readonly failKinds: ReadonlySet<FailureKind>;
  private readonly failGateway: boolean;
  private readonly fail5xx: boolean;
  private readonly failStatuses: ReadonlySet<number>;
  private readonly baseOpenMs: number;

  constructor(
    readonly name: string,
    readonly settings: EffectiveBreaker,
    private readonly hooks: BreakerHooks,
  ) {
    const kinds = new Set<FailureKind>();
    const statuses = new Set<number>();
    for (const f of settings.failOn) {
      if (typeof f === 'number') statuses.add(f);
      else if (f === 'connect-failure' || f === 'reset' || f === 'timeout') kinds.add(f);
      // A connection closed before the request was sent is a reset too (failOn has no name for it).
      if (f === 'reset') kinds.add('refused-stream');
    }
    this.failKinds = kinds;
    this.failStatuses = statuses;
    this.failGateway = settings.failOn.includes('gateway-error');
    for (const f of settings.failOn) if (typeof f === 'string' && f in GRPC_STATUS_ON) this.failGrpc.add(GRPC_STATUS_ON[f as GrpcStatusOn]);
    this.fail5xx = settings.failOn.includes('5xx');

    const hoa = settings.halfOpenAfter;
    this.baseOpenMs = typeof hoa === 'number' ? hoa : hoa.base;
    const inner: IBackoffFactory<IHalfOpenAfterBackoffContext> =
      typeof hoa === 'number'
        ? new ConstantBackoff(hoa)
        : new ExponentialBackoff({ initialDelay: hoa.base, maxDelay: hoa.max, generator: noJitterGenerator });
    const factory: IBackoffFactory<IHalfOpenAfterBackoffContext> = {
      next: (ctx) => new RecordingBackoff(inner.next(ctx), this),
    };
    const trip = settings.failureRate
      ? new SamplingBreaker({
          threshold: settings.failureRate.threshold,
          duration: settings.failureRate.window,
          // cockatiel opens only when calls >= window * minimumRps; that product comes back
          // as e.g. 21.000000000000004 for 21 calls over 10s, which would demand a 22nd call.
          // Half a call of slack makes exactly minRequests calls enough, and never fewer.
          minimumRps: (settings.failureRate.minRequests - 0.5) / (settings.failureRate.window / 1000),
        })
      : new ConsecutiveBreaker(settings.consecutiveFailures ?? 5);

    // A failed attempt is an AttemptError whose kind failOn lists; results are judged by
    // status below. Anything else (a client that went away) is neither success nor failure.
    const failurePolicy = handleWhen((err) => err instanceof NoVerdict || (err instanceof AttemptError && (this.failKinds.has(err.kind) || err.probeTimedOut))).orWhenResult(
      (r) => {
        const g = (r as { grpcStatus?: number | null }).grpcStatus;
        if (g !== undefined && g !== null && this.failGrpc.has(g)) return true;
        return this.isFailureStatus((r as { status: number }).status);
      },
    );
    this.policy = circuitBreaker(failurePolicy, { halfOpenAfter: factory, breaker: trip });
    if (trip instanceof ConsecutiveBreaker) {
      // Its own count is the number we report. Success/failure listeners would make
      // cockatiel time every call (two performance.now() and an event per attempt).
      this.consecutive = trip;
    } else {
      this.policy.onFailure((e) => {
        if (e.handled && !('error' in e.reason && e.reason.error instanceof NoVerdict)) this.failuresInARow++;
      });
      this.policy.onSuccess(() => {
        this.failuresInARow = 0;
      });
    }
    this.policy.onStateChange((s) => this.transition(STATE_NAMES[s]));
  }

  /** grpc-status values (of trailers-only responses) that failOn lists. */
  private readonly failGrpc = new Set<number>();

  isFailureStatus(status: number): boolean {
    if (status < 500) return this.failStatuses.size > 0 && this.failStatuses.has(status);
    if (this.fail5xx) return true;
    if (this.failGateway && (status === 502 || status === 503 || status === 504)) return true;
    return this.failStatuses.has(status);
  }

  /**
   * Runs one attempt through the breaker. `fn` learns whether it is the half-open probe
   * (bounded by probeTimeout); a probe that ends without an upstream verdict leaves the
   * breaker half-open (NoVerdict above).
   */
  execute<T extends { status: number }>(fn: (probe: boolean) => Promise<T>): Promise<T> {
    const p = this.policy;
    const state = p.state;
    if (state === CircuitState.HalfOpen) {
      // cockatiel would park this call behind the probe; a proxy fails fast instead.
      this.hooks.onReject(this);
      return Promise.reject(new BreakerOpenError(1));
    }
    // While isolated, or open with time left, cockatiel would only build and throw its own
    // error (with a stack trace, the dearest part of a rejection): answer without calling it.
    // Once the open time is up, the call goes to cockatiel, which sends it as the probe.
    if (state === CircuitState.Isolated || (state === CircuitState.Open && Date.now() - this.openedAt < this.openForMs)) {
      this.hooks.onReject(this);
      return Promise.reject(new BreakerOpenError(this.retryAfterSeconds() ?? 1));
    }
    return p.execute(() => {
      const probe = p.state !== CircuitState.Closed;
      const run = fn(probe);
      return probe ? run.catch((err: unknown) => Promise.reject(isUpstreamVerdict(err) ? err : new NoVerdict(err))) : run;
    }).catch((err: unknown) => {
      if (err instanceof NoVerdict) throw err.inner;
      if (err instanceof BrokenCircuitError || err instanceof IsolatedCircuitError) {
        this.hooks.onReject(this);
        throw new BreakerOpenError(this.retryAfterSeconds() ?? 1);
      }
      throw err;
    });
  }

  /** Holds the breaker open until `reset()`. */
  isolate(): void {
    if (!this.isolation) this.isolation = this.policy.isolate();
  }

  /**
   * Closes the breaker: ends an isolation, or force-closes one that opened on failures
   * (an operator who fixed the upstream need not wait for the probe). cockatiel has no
   * close() of its own; isolating and releasing at once is its way to the closed state.
   * Returns false when the breaker was already closed.
   */
  reset(): boolean {
    if (this.isolation) {
      this.isolation.dispose();
      this.isolation = null;
      return true;
    }
    if (this.policy.state === CircuitState.Closed) return false;
    this.policy.isolate().dispose();
    return true;
  }

  /** Whole seconds until the half-open probe; null while closed. */
  retryAfterSeconds(): number | null {
    switch (this.state) {
      case 'closed':
        return null;
      case 'half-open':
        return 1;
      case 'isolated':
        // No end time while isolated: the configured open time is the honest hint.
        return Math.max(1, Math.ceil(this.baseOpenMs / 1000));
      case 'open':
        return Math.max(1, Math.ceil((this.openedAt + this.openForMs - Date.now()) / 1000));
    }
  }

  snapshot(): BreakerSnapshot {
    return {
      name: this.name,
      routes: [...this.routes],
      state: this.state,
      since: this.since.toISOString(),
      consecutiveFailures: this.consecutiveFailures,
      opens: this.opens,
      retryAfterSeconds: this.retryAfterSeconds(),
    };
  }

  /** Failed attempts since the last success (or since the breaker last closed). */
  get consecutiveFailures(): number {
    return this.consecutive !== null ? (this.consecutive.state as number) : this.failuresInARow;
  }

  private transition(to: BreakerState): void {
    if (this.noVerdictReopen) {
      // Still half-open for us (no transition, no event, no open counted): cockatiel holds
      // "open with no time left", so the next call goes out as the probe.
      this.noVerdictReopen = false;
      // cockatiel counted the probe as a failure in the row; it was not one.
      if (this.consecutive !== null) this.consecutive.state = Math.max(0, (this.consecutive.state as number) - 1);
      return;
    }
    const from = this.state;
    if (from === to) return;
    this.state = to;
    this.since = new Date();
    if (to === 'open') {
      this.opens++;
      this.openedAt = Date.now();
    }
    if (to === 'closed') {
      this.epoch++;
      this.failuresInARow = 0;
      // cockatiel leaves the count as it was when an operator reset closed the breaker.
      if (this.consecutive !== null) this.consecutive.state = 0;
    }
    this.hooks.onTransition(this, from, to);
  }
}

/** Layer: every attempt, retries included, passes the route's breaker. */
export function breakerLayer<R extends RouteContext>(breaker: Breaker, next: (ex: Exchange<R>, probe: boolean) => Promise<Reply>): Handler<R> {
  return (ex) => breaker.execute((probe) => next(ex, probe));
}
