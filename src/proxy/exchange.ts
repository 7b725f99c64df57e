// The transports' view of the per-exchange types: the compiled route with everything a
// transport needs (endpoints, pools, stacks), and Exchange/Handler over it.
import type { BulkheadPolicy } from 'cockatiel';
import type { EffectiveRoute } from '../config/load.js';
import type { RouteMetrics } from '../admin/metrics.js';
import type { Breaker } from '../policies/breaker.js';
import type { RetryBudget } from '../policies/budget.js';
import type { FallbackPlan } from '../policies/fallback.js';
import type { StalePlan } from '../policies/stale-cache.js';
import { Exchange as BaseExchange, type Handler as BaseHandler, type RouteContext } from '../exchange/exchange.js';
import type { Upstream } from './upstream.js';

export { ClientGoneError, type Reply, type UpgradeRequest } from '../exchange/exchange.js';

export interface CompiledRoute extends RouteContext {
  readonly name: string;
  readonly config: EffectiveRoute;
  readonly upstream: Upstream;
  readonly breaker: Breaker | null;
  readonly bulkhead: BulkheadPolicy;
  readonly budget: RetryBudget;
  readonly metrics: RouteMetrics;
  /** The composed policy stack for this route's HTTP requests (pipeline.ts). */
  readonly handler: Handler;
  /** The same stack over the upgrade handshake attempt (WebSocket and other upgrades). */
  readonly upgradeHandler: Handler;
  /** The route's fallback, built once; also used by the WebSocket handshake. */
  readonly fallback: FallbackPlan | null;
  /** The stale-if-error cache layer, when the route enables fallback.staleIfError. */
  readonly stale: StalePlan | null;
  /** Prefix to replace in the path (match.pathPrefix or match.path), when rewritePrefix is set. */
  readonly rewriteFrom: string | null;
  readonly rewriteTo: string | null;
}

export type Exchange = BaseExchange<CompiledRoute>;
export const Exchange = BaseExchange;
export type Handler = BaseHandler<CompiledRoute>;
