// Prometheus metrics on one registry of our own (never prom-client's global). Labels are
// declared up front and take only config names and closed enums; children are resolved
// once per route/breaker so the request path never builds a label object.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ATTEMPT_OUTCOMES, type AttemptOutcome } from '../policies/outcome.js';
import { BREAKER_STATES, type BreakerState } from '../policies/breaker.js';
import { HTTP_METHODS, FALLBACK_ON, type FallbackOn } from '../config/schema.js';

export const UNMATCHED_ROUTE = '_unmatched';
export const OTHER_METHOD = '_other';

/** Label values of outrigger_retries_total{reason}. */
export const RETRY_REASONS = ['connect_failure', 'refused_stream', 'reset', 'per_try_timeout', 'gateway_error', '5xx', 'retriable_status'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

export const TIMEOUT_KINDS = ['per_try', 'total', 'body'] as const;
export type TimeoutMetricKind = (typeof TIMEOUT_KINDS)[number];

const METHOD_INDEX = new Map<string, number>(HTTP_METHODS.map((m, i) => [m, i]));
const METHOD_LABELS: string[] = [...HTTP_METHODS, OTHER_METHOD];

export class Metrics {
  readonly registry = new Registry();
  readonly requests = new Counter({
    name: 'outrigger_requests_total',
    help: 'Requests answered, by route, method and final status code (499: the client went away).',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [this.registry],
  });
  readonly duration = new Histogram({
    name: 'outrigger_request_duration_seconds',
    help: 'Time from request start to the end of the response, by route.',
    labelNames: ['route'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly attempts = new Counter({
    name: 'outrigger_upstream_attempts_total',
    help: 'Attempts sent upstream, retries included, by outcome.',
    labelNames: ['route', 'upstream', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly retries = new Counter({
    name: 'outrigger_retries_total',
    help: 'Retries started, by the failure that caused them.',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  readonly budgetExhausted = new Counter({
    name: 'outrigger_retry_budget_exhausted_total',
    help: 'Retries refused because the route retry budget was spent.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly breakerState = new Gauge({
    name: 'outrigger_breaker_state',
    help: 'Circuit breaker state, one-hot: 1 for the current state.',
    labelNames: ['breaker', 'state'] as const,
    registers: [this.registry],
  });
  readonly breakerTransitions = new Counter({
    name: 'outrigger_breaker_transitions_total',
    help: 'Circuit breaker state changes, by the state entered.',
    labelNames: ['breaker', 'to'] as const,
    registers: [this.registry],
  });
  readonly breakerRejections = new Counter({
    name: 'outrigger_breaker_rejections_total',
    help: 'Attempts refused by an open, half-open or isolated breaker.',
    labelNames: ['breaker'] as const,
    registers: [this.registry],
  });
  readonly fallbacks = new Counter({
    name: 'outrigger_fallbacks_total',
    help: 'Fallback responses served, by trigger.',
    labelNames: ['route', 'trigger'] as const,
    registers: [this.registry],
  });
  readonly timeouts = new Counter({
    name: 'outrigger_timeouts_total',
    help: 'Timeouts that fired: per_try, total (the route deadline) or body (idle response body).',
    labelNames: ['route', 'kind'] as const,
    registers: [this.registry],
  });
  readonly overload = new Counter({
    name: 'outrigger_overload_rejections_total',
    help: 'Requests refused by the route concurrency limit.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'outrigger_inflight_requests',
    help: 'Requests in flight, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly wsConnections = new Gauge({
    name: 'outrigger_websocket_connections',
    help: 'Open WebSocket connections, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly wsUpgrades = new Counter({
    name: 'outrigger_websocket_upgrades_total',
    help: 'WebSocket upgrade attempts, by outcome.',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly wsClosed = new Counter({
    name: 'outrigger_websocket_closed_total',
    help: 'WebSocket connections closed, by reason.',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  readonly reloads = new Counter({
    name: 'outrigger_config_reloads_total',
    help: 'Config reloads, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  constructor(withDefaults = true) {
    if (withDefaults) collectDefaultMetrics({ register: this.registry });
    this.reloads.labels('success').inc(0);
    this.reloads.labels('rejected').inc(0);
  }

  forRoute(route: string, upstream: string | null): RouteMetrics {
    return new RouteMetrics(this, route, upstream);
  }

  forBreaker(name: string): BreakerMetrics {
    return new BreakerMetrics(this, name);
  }
}

type CounterChild = ReturnType<Counter<string>['labels']>;
type GaugeChild = ReturnType<Gauge<string>['labels']>;
type HistogramChild = ReturnType<Histogram<string>['labels']>;

export class RouteMetrics {
  readonly duration: HistogramChild;
  readonly inflight: GaugeChild;
  readonly budgetExhausted: CounterChild;
  readonly overload: CounterChild;
  private readonly attempts: Record<AttemptOutcome, CounterChild> | null;
  private readonly retries: Record<RetryReason, CounterChild>;
  private readonly fallbacks: Record<FallbackOn, CounterChild>;
  private readonly timeouts: Record<TimeoutMetricKind, CounterChild>;
  /** [methodIndex][code] -> child, filled lazily: codes are an open set we only learn by seeing them. */
  private readonly requests: Array<Map<number, CounterChild>>;

  constructor(
    private readonly m: Metrics,
    readonly route: string,
    upstream: string | null,
  ) {
    this.duration = m.duration.labels(route);
    this.inflight = m.inflight.labels(route);
    this.inflight.set(0);
    this.budgetExhausted = m.budgetExhausted.labels(route);
    this.overload = m.overload.labels(route);
    this.attempts = upstream === null ? null : byKey(ATTEMPT_OUTCOMES, (o) => m.attempts.labels(route, upstream, o));
    this.retries = byKey(RETRY_REASONS, (r) => m.retries.labels(route, r));
    this.fallbacks = byKey(FALLBACK_ON, (t) => m.fallbacks.labels(route, t));
    this.timeouts = byKey(TIMEOUT_KINDS, (k) => m.timeouts.labels(route, k));
    this.requests = METHOD_LABELS.map(() => new Map());
    // Zero series from the start, so rate() and absent() work before the first event.
    for (const c of [this.budgetExhausted, this.overload, ...Object.values<CounterChild>(this.retries), ...Object.values<CounterChild>(this.fallbacks), ...Object.values<CounterChild>(this.timeouts)]) c.inc(0);
    if (this.attempts) for (const c of Object.values<CounterChild>(this.attempts)) c.inc(0);
  }

  request(method: string, code: number): void {
    const idx = METHOD_INDEX.get(method) ?? METHOD_LABELS.length - 1;
    const byCode = this.requests[idx] as Map<number, CounterChild>;
    let child = byCode.get(code);
    if (child === undefined) {
      child = this.m.requests.labels(this.route, METHOD_LABELS[idx] as string, String(code));
      byCode.set(code, child);
    }
    child.inc();
  }

  attempt(outcome: AttemptOutcome): void {
    this.attempts?.[outcome].inc();
  }

  retry(reason: RetryReason): void {
    this.retries[reason].inc();
  }

  fallback(trigger: FallbackOn): void {
    this.fallbacks[trigger].inc();
  }

  timeout(kind: TimeoutMetricKind): void {
    this.timeouts[kind].inc();
  }
}

export class BreakerMetrics {
  private readonly states: Record<BreakerState, GaugeChild>;
  private readonly transitions: Record<BreakerState, CounterChild>;
  readonly rejections: CounterChild;

  constructor(m: Metrics, name: string) {
    this.states = byKey(BREAKER_STATES, (s) => m.breakerState.labels(name, s));
    this.transitions = byKey(BREAKER_STATES, (s) => m.breakerTransitions.labels(name, s));
    this.rejections = m.breakerRejections.labels(name);
    this.rejections.inc(0);
    this.setState('closed');
  }

  setState(state: BreakerState): void {
    for (const s of BREAKER_STATES) this.states[s].set(s === state ? 1 : 0);
  }

  transition(to: BreakerState): void {
    this.transitions[to].inc();
    this.setState(to);
  }
}

function byKey<K extends string, V>(keys: readonly K[], make: (k: K) => V): Record<K, V> {
  const out = {} as Record<K, V>;
  for (const k of keys) out[k] = make(k);
  return out;
}
