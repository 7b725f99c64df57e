// The policy stack, outermost first. The order is fixed here and nowhere else.
//
//   fallback     turns a named failure (and, if listed, a final 5xx) into the configured
//                response; outermost, so it also covers overload and breaker rejections.
//   stale        (fallback.staleIfError) the stale-if-error cache, the fallback's first
//                choice: just inside it, so it sees the same triggers before the static
//                response is made (and a miss falls through to it), and outside
//                concurrency and retry, so it also answers overload and stores only the
//                final response, never one a retry threw away. Absent on other routes.
//   dead letter  (deadLetter.enabled) records a non-idempotent request that ends in a
//                proxy-made failure, before fallback may answer it, so a fallback does not
//                hide it. (The stale cache serves only GET and HEAD, so the two never meet.)
//   concurrency  admits or refuses the request before any work; holds the slot until the
//                response ends, since that is when the upstream connection frees up.
//   retry        repeats failed attempts within the budget, with backoff or Retry-After,
//                never past the deadline (set on the Exchange when the request starts).
//   breaker      sees every attempt, retries included, so it counts what the upstream
//                really did; an open breaker fails fast and is never retried.
//   attempt      one try against one endpoint, under min(perTryTimeout, time left).
//
// Deadline outside retry (Envoy's route timeout) means retries can never stretch a
// request past its timeout; breaker inside retry (Envoy's outlier detection) means a
// retry storm trips the breaker rather than hiding from it.
//
// The transport's attempt is handed in: an HTTP request (proxy/attempt.ts) and an upgrade
// handshake (proxy/upgrade.ts) go through the same layers, so every rule above holds for
// both by construction.
import type { BulkheadPolicy } from 'cockatiel';
import type { EffectiveRoute } from '../config/load.js';
import type { Exchange, Handler, Reply, RouteContext } from '../exchange/exchange.js';
import { breakerLayer, type Breaker } from './breaker.js';
import { concurrencyLayer } from './concurrency.js';
import type { DeadLetterPlan } from './dead-letter.js';
import type { FallbackPlan } from './fallback.js';
import { RetryPlan, retryLayer } from './retry.js';
import type { StalePlan } from './stale-cache.js';

/** The policy objects of one route, built once per config load (runtime.ts). */
export interface PipelineParts {
  readonly config: EffectiveRoute;
  readonly breaker: Breaker | null;
  readonly bulkhead: BulkheadPolicy;
  readonly fallback: FallbackPlan | null;
  /** The stale-if-error cache layer, when fallback.staleIfError is set. */
  readonly stale: StalePlan | null;
  /** The route's dead-letter recorder, when deadLetter.enabled. */
  readonly deadLetter?: DeadLetterPlan | null;
}

/** One try against endpoint `endpoint`; `probe` when it is the breaker's half-open probe. */
export type AttemptFn<R extends RouteContext> = (ex: Exchange<R>, endpoint: number, probe: boolean) => Promise<Reply>;

export function buildPipeline<R extends RouteContext>(route: PipelineParts, run: AttemptFn<R>): Handler<R> {
  const breaker = route.breaker;
  const attemptLayer = (ex: Exchange<R>, probe: boolean): Promise<Reply> => {
    if (ex.endpoint < 0) ex.endpoint = ex.route.upstream.pick();
    ex.attempts++;
    return run(ex, ex.endpoint, probe);
  };
  const attempt: Handler<R> = breaker ? breakerLayer(breaker, attemptLayer) : (ex) => attemptLayer(ex, false);
  const retried = retryLayer(new RetryPlan(route.config.retry), attempt);
  const limited = concurrencyLayer(route.bulkhead, retried);
  const recorded = route.deadLetter ? route.deadLetter.layer(limited) : limited;
  const stale = route.stale ? route.stale.layer(recorded) : recorded;
  // With staleIfError and no body configured, a cache miss passes the failure through.
  return route.fallback?.staticResponse ? route.fallback.layer(stale) : stale;
}
