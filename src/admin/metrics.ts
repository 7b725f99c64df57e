// Prometheus metrics on one registry of our own (never prom-client's global). Labels are
// declared up front and take only config names and closed enums.
//
// The four series touched by every request (requests, duration, attempts, in-flight) are
// plain numbers on RouteMetrics, handed to prom-client when /metrics is scraped (its
// `collect` hook). prom-client hashes and validates the labels on every inc/observe, even
// on a child; measured with callgrind, that was the largest cost on the request path after
// node's own HTTP work. Rarer series (retries, fallbacks, timeouts) use children directly.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ATTEMPT_OUTCOMES, type AttemptOutcome } from '../exchange/outcome.js';
import { BREAKER_STATES, type BreakerState } from '../policies/breaker.js';
import { HTTP_METHODS, FALLBACK_ON, type FallbackOn } from '../config/schema.js';
import { EVENT_KINDS, EventLog, type EventKind, type Severity } from '../events/event-log.js';
import { RouteWindow } from './window.js';

// Read once at module load; the path is the same from src/admin and dist/admin.
const PACKAGE_VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const PROMTOOL_REJECTED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total'];

export const UNMATCHED_ROUTE = '_unmatched';
/** Status codes the proxy answers itself on a route (before or instead of the upstream): zero series. */
export const PROXY_CODES = [408, 499, 500, 502, 503, 504] as const;
/** ... and on requests no route matched. */
export const UNMATCHED_CODES = [400, 404, 499] as const;
const DURATION_NAME = 'outrigger_request_duration_seconds';
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
export const OTHER_METHOD = '_other';

export { RETRY_REASONS, TIMEOUT_KINDS, type RetryReason, type TimeoutMetricKind } from '../exchange/outcome.js';
import { RETRY_REASONS, TIMEOUT_KINDS, type RetryReason, type TimeoutMetricKind } from '../exchange/outcome.js';

const FALLBACK_INDEX = Object.fromEntries(FALLBACK_ON.map((t, i) => [t, i])) as Record<FallbackOn, number>;
export { DURATION_BUCKETS };
const METHOD_INDEX = new Map<string, number>(HTTP_METHODS.map((m, i) => [m, i]));
const METHOD_LABELS: string[] = [...HTTP_METHODS, OTHER_METHOD];

export class Metrics {
  readonly registry = new Registry();
  /** One RouteMetrics per (route, upstream), kept across reloads so counters never go back. */
  private readonly routes = new Map<string, RouteMetrics>();
  readonly requests = new Counter({
    name: 'outrigger_requests_total',
    help: 'Requests answered, by route, method and final status code (499: the client went away).',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [this.registry],
    collect: () => {
      this.requests.reset();
      for (const rm of this.routes.values()) rm.exportRequests(this.requests);
    },
  });
  readonly duration = new Histogram({
    name: DURATION_NAME,
    help: 'Time from request start to the end of the response, by route.',
    labelNames: ['route'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly attempts = new Counter({
    name: 'outrigger_upstream_attempts_total',
    help: 'Attempts sent upstream, retries included, by outcome.',
    labelNames: ['route', 'upstream', 'outcome'] as const,
    registers: [this.registry],
    collect: () => {
      this.attempts.reset();
      for (const rm of this.routes.values()) rm.exportAttempts(this.attempts);
    },
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
  readonly internalErrors = new Counter({
    name: 'outrigger_internal_errors_total',
    help: 'Unexpected errors inside the proxy that became OUTRIGGER_INTERNAL (a bug: alert on any).',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly truncated = new Counter({
    name: 'outrigger_responses_truncated_total',
    help: 'Responses cut off mid-body because the upstream broke off; the client connection was cut so the truncation is visible.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly grpcResponses = new Counter({
    name: 'outrigger_grpc_responses_total',
    help: 'gRPC calls by the grpc-status the client got (0-16; from the response headers or trailers, whichever carried it; a cancelled call is 1).',
    labelNames: ['route', 'grpc_status'] as const,
    registers: [this.registry],
  });
  readonly staleServed = new Counter({
    name: 'outrigger_stale_served_total',
    help: 'Responses served from the route stale-if-error cache instead of an error or the static fallback.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly staleCacheBytes = new Gauge({
    name: 'outrigger_stale_cache_bytes',
    help: 'Bytes held by the stale-if-error caches of every route (bodies, header names and values, keys).',
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'outrigger_dead_letters_total',
    help: 'Requests recorded in the dead-letter journal, by the proxy-made failure that ended them.',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  readonly deadLettersReplayed = new Counter({
    name: 'outrigger_dead_letters_replayed_total',
    help: 'Dead-letter replays through the admin API: success (a 2xx) or failure (anything else).',
    labelNames: ['route', 'result'] as const,
    registers: [this.registry],
  });
  readonly deadLettersEvicted = new Counter({
    name: 'outrigger_dead_letters_evicted_total',
    help: 'Dead-letter entries evicted, oldest first, past deadLetter.maxEntries or maxBytes.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly deadLetterTorn = new Counter({
    name: 'outrigger_dead_letter_torn_records_total',
    help: 'Journal records skipped when the journal was opened: a torn last record (a crash mid-write) or a bad checksum.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly deadLetterBytes = new Gauge({
    name: 'outrigger_dead_letter_journal_bytes',
    help: 'Size of the dead-letter journal file, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly inflight = new Gauge({
    name: 'outrigger_inflight_requests',
    help: 'Requests in flight, by route.',
    labelNames: ['route'] as const,
    registers: [this.registry],
    collect: () => {
      const byRoute = new Map<string, number>();
      for (const rm of this.routes.values()) byRoute.set(rm.route, (byRoute.get(rm.route) ?? 0) + rm.inflight);
      for (const [route, n] of byRoute) this.inflight.labels(route).set(n);
    },
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
  readonly eventsTotal = new Counter({
    name: 'outrigger_events_total',
    help: 'Operator events (GET /events), by kind and severity; merged repeats count too.',
    labelNames: ['kind', 'severity'] as const,
    registers: [this.registry],
  });
  readonly breakerCritical = new Gauge({
    name: 'outrigger_breaker_critical',
    help: 'Whether a route marked critical uses the breaker (1) or not (0), for alerts on critical breakers.',
    labelNames: ['breaker'] as const,
    registers: [this.registry],
  });
  readonly breakerFlapping = new Gauge({
    name: 'outrigger_breaker_flapping',
    help: 'Whether the breaker is flapping (1) or not (0), by percent state change over its last 21 samples.',
    labelNames: ['breaker'] as const,
    registers: [this.registry],
  });
  /** Operator events; the proxy's logger is attached by app.ts. */
  readonly events = new EventLog();
  /** The BreakerMetrics of each breaker name, the newest one when a breaker was rebuilt. */
  readonly breakerStats = new Map<string, BreakerMetrics>();
  readonly reloads = new Counter({
    name: 'outrigger_config_reloads_total',
    help: 'Config reloads, by result.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly buildInfo = new Gauge({
    name: 'outrigger_build_info',
    help: 'Always 1; the labels say which Outrigger version runs on which Node.js.',
    labelNames: ['version', 'node'] as const,
    registers: [this.registry],
  });
  readonly lastReloadSuccess = new Gauge({
    name: 'outrigger_config_last_reload_success',
    help: '1 if the last config load (start-up or reload) succeeded, 0 if it was rejected.',
    registers: [this.registry],
  });
  readonly lastReloadTimestamp = new Gauge({
    name: 'outrigger_config_last_reload_timestamp_seconds',
    help: 'Unix time of the last config load attempt (start-up or reload), successful or not.',
    registers: [this.registry],
  });

  constructor(withDefaults = true) {
    // The duration histogram is kept by RouteMetrics; prom-client's instance is only the
    // declaration (name, help, labels, buckets) and is replaced in the registry by a view.
    this.registry.removeSingleMetric(DURATION_NAME);
    this.registry.registerMetric(new DurationView(this.duration, () => this.routes.values()) as unknown as Histogram<string>);
    if (withDefaults) {
      collectDefaultMetrics({ register: this.registry });
      // Gauges whose names end in _total fail `promtool check metrics`; the same counts stay
      // available by type as nodejs_active_handles, nodejs_active_requests, nodejs_active_resources.
      for (const name of PROMTOOL_REJECTED_DEFAULTS) this.registry.removeSingleMetric(name);
    }
    this.reloads.labels('success').inc(0);
    this.reloads.labels('failure').inc(0);
    // Children resolved once: counting an event is then a property lookup, not label hashing.
    const eventChildren = {} as Record<EventKind, Partial<Record<Severity, CounterChild>>>;
    for (const [kind, sevs] of Object.entries(EVENT_KINDS) as Array<[EventKind, readonly Severity[]]>) {
      const bySev: Partial<Record<Severity, CounterChild>> = (eventChildren[kind] = {});
      for (const sev of sevs) (bySev[sev] = this.eventsTotal.labels(kind, sev)).inc(0);
    }
    this.events.countWith((kind, sev) => eventChildren[kind][sev]?.inc());
    this.buildInfo.labels(PACKAGE_VERSION, process.version).set(1);
    this.configLoaded(true);
  }

  /** A config load attempt ended: start-up, or a reload that was applied, unchanged, or rejected. */
  configLoaded(ok: boolean): void {
    this.lastReloadSuccess.set(ok ? 1 : 0);
    this.lastReloadTimestamp.set(Date.now() / 1000);
  }

  forRoute(route: string, upstream: string | null): RouteMetrics {
    const key = `${route}\u0000${upstream ?? ''}`;
    let rm = this.routes.get(key);
    if (!rm) this.routes.set(key, (rm = new RouteMetrics(this, route, upstream)));
    return rm;
  }

  forBreaker(name: string): BreakerMetrics {
    const bm = new BreakerMetrics(this, name);
    this.breakerStats.set(name, bm);
    return bm;
  }
}

type CounterChild = ReturnType<Counter<string>['labels']>;
type GaugeChild = ReturnType<Gauge<string>['labels']>;

const OUTCOME_INDEX = Object.fromEntries(ATTEMPT_OUTCOMES.map((o, i) => [o, i])) as Record<AttemptOutcome, number>;

/**
 * outrigger_request_duration_seconds as prom-client would print it, read from the counts
 * RouteMetrics keeps. Registered in place of the declared Histogram (same name, help, labels).
 */
class DurationView {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  constructor(
    decl: Histogram<string>,
    private readonly routes: () => Iterable<RouteMetrics>,
  ) {
    this.name = (decl as unknown as { name: string }).name;
    this.help = (decl as unknown as { help: string }).help;
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Array<{ metricName: string; labels: Record<string, string>; value: number }> }> {
    const values: Array<{ metricName: string; labels: Record<string, string>; value: number }> = [];
    // One series per route: a route whose upstream changed on reload has two RouteMetrics.
    const byRoute = new Map<string, { counts: Float64Array; sum: number; count: number }>();
    for (const rm of this.routes()) {
      let agg = byRoute.get(rm.route);
      if (!agg) byRoute.set(rm.route, (agg = { counts: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0 }));
      for (let i = 0; i <= DURATION_BUCKETS.length; i++) agg.counts[i]! += rm.durationCounts[i] as number;
      agg.sum += rm.durationSum;
      agg.count += rm.durationCount;
    }
    for (const [route, agg] of byRoute) {
      let acc = 0;
      for (let i = 0; i <= DURATION_BUCKETS.length; i++) {
        acc += agg.counts[i] as number;
        const le = i < DURATION_BUCKETS.length ? String(DURATION_BUCKETS[i]) : '+Inf';
        values.push({ metricName: `${this.name}_bucket`, labels: { le, route }, value: acc });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { route }, value: agg.sum });
      values.push({ metricName: `${this.name}_count`, labels: { route }, value: agg.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {}
}

export class RouteMetrics {
  /** Requests in flight now (outrigger_inflight_requests). */
  inflight = 0;
  /** Per-second buckets over five minutes, for /stats and health levels. */
  readonly window = new RouteWindow(DURATION_BUCKETS, FALLBACK_ON.length);
  /** Counts outrigger_retry_budget_exhausted_total, the window and the event. */
  readonly budgetExhausted: { inc(): void };
  readonly overload: CounterChild;
  /** outrigger_responses_truncated_total{route}, and the response_truncated event. */
  readonly truncated: { inc(): void };
  private readonly retries: Record<RetryReason, CounterChild>;
  private readonly fallbacks: Record<FallbackOn, CounterChild>;
  private readonly timeouts: Record<TimeoutMetricKind, CounterChild>;
  private readonly events: EventLog;
  private readonly internalErrors: CounterChild;
  /** Resolved by zeroStale(), for the routes that enable fallback.staleIfError. */
  private staleChild: CounterChild | null = null;
  private readonly unavailableMessage: string;
  /** Counts by [methodIndex] then status code: codes are an open set we only learn by seeing them. */
  private readonly requests: Array<Map<number, number>>;
  /** Counts by ATTEMPT_OUTCOMES index; null for the unmatched pseudo-route (no upstream). */
  private readonly attempts: Float64Array | null;
  /** Non-cumulative counts per DURATION_BUCKETS bound, then +Inf. */
  readonly durationCounts = new Float64Array(DURATION_BUCKETS.length + 1);
  durationSum = 0;
  durationCount = 0;

  constructor(
    private readonly m: Metrics,
    readonly route: string,
    readonly upstream: string | null,
  ) {
    const exhausted = m.budgetExhausted.labels(route);
    const events = m.events;
    this.events = events;
    this.unavailableMessage = `cannot connect to upstream ${upstream ?? ''}`.trimEnd();
    this.budgetExhausted = {
      inc: () => {
        exhausted.inc();
        this.window.exhausted();
        events.emit('retry_budget_exhausted', 'warning', { route }, 'retry refused: the route retry budget is spent');
      },
    };
    this.overload = m.overload.labels(route);
    this.internalErrors = m.internalErrors.labels(route);
    const truncated = m.truncated.labels(route);
    this.truncated = {
      inc: () => {
        truncated.inc();
        this.responseTruncated();
      },
    };
    this.retries = byKey(RETRY_REASONS, (r) => m.retries.labels(route, r));
    this.fallbacks = byKey(FALLBACK_ON, (t) => m.fallbacks.labels(route, t));
    this.timeouts = byKey(TIMEOUT_KINDS, (k) => m.timeouts.labels(route, k));
    this.requests = METHOD_LABELS.map(() => new Map());
    this.attempts = upstream === null ? null : new Float64Array(ATTEMPT_OUTCOMES.length);
    // Zero series from the start, so rate() and absent() work before the first event.
    for (const c of [exhausted, this.overload, this.internalErrors, truncated, ...Object.values<CounterChild>(this.retries), ...Object.values<CounterChild>(this.fallbacks), ...Object.values<CounterChild>(this.timeouts)]) c.inc(0);
  }

  /**
   * Series at 0 for the status codes the proxy answers itself, per method (`null`: every
   * method), so the first 502 or 503 of a route shows in rate() and increase().
   */
  zeroCodes(methods: readonly string[] | null, codes: readonly number[]): void {
    const idxs = methods === null ? METHOD_LABELS.map((_, i) => i) : methods.map((mth) => METHOD_INDEX.get(mth) ?? METHOD_LABELS.length - 1);
    for (const i of idxs) {
      const byCode = this.requests[i] as Map<number, number>;
      for (const code of codes) if (!byCode.has(code)) byCode.set(code, 0);
    }
  }

  /** outrigger_grpc_responses_total{grpc_status} at 0 for all 17 statuses, for a route with grpc: true. */
  zeroGrpc(): void {
    for (let code = 0; code <= 16; code++) this.grpcChild(code).inc(0);
  }

  /** A gRPC call ended with this grpc-status (a value outside 0..16 counts as 2 UNKNOWN). */
  grpcResponse(code: number): void {
    this.grpcChild(Number.isInteger(code) && code >= 0 && code <= 16 ? code : 2).inc();
  }

  private grpcChildren: CounterChild[] | null = null;
  private grpcChild(code: number): CounterChild {
    const list = (this.grpcChildren ??= []);
    return (list[code] ??= this.m.grpcResponses.labels(this.route, String(code)));
  }

  /** outrigger_stale_served_total at 0, for a route that enables fallback.staleIfError. */
  zeroStale(): void {
    (this.staleChild ??= this.m.staleServed.labels(this.route)).inc(0);
  }

  staleServed(): void {
    (this.staleChild ??= this.m.staleServed.labels(this.route)).inc();
  }

  /** WebSocket upgrade and close series at 0, for a route that accepts WebSocket upgrades. */
  zeroUpgrades(outcomes: readonly string[], reasons: readonly string[]): void {
    for (const o of outcomes) this.m.wsUpgrades.labels(this.route, o).inc(0);
    for (const r of reasons) this.m.wsClosed.labels(this.route, r).inc(0);
    this.m.wsConnections.labels(this.route).inc(0);
  }

  /** A finished WebSocket handshake (outrigger_websocket_upgrades_total). */
  wsUpgrade(outcome: string): void {
    this.m.wsUpgrades.labels(this.route, outcome).inc();
  }

  wsOpened(): void {
    this.m.wsConnections.labels(this.route).inc();
  }

  wsClosed(reason: string): void {
    this.m.wsConnections.labels(this.route).dec();
    this.m.wsClosed.labels(this.route, reason).inc();
  }

  request(method: string, code: number): void {
    const idx = METHOD_INDEX.get(method) ?? METHOD_LABELS.length - 1;
    const byCode = this.requests[idx] as Map<number, number>;
    byCode.set(code, (byCode.get(code) ?? 0) + 1);
    this.window.request(code);
  }

  observeDuration(seconds: number): void {
    const b = DURATION_BUCKETS;
    let i = 0;
    while (i < b.length && seconds > (b[i] as number)) i++;
    this.durationCounts[i]! += 1;
    this.window.latencyBucket(i);
    this.durationSum += seconds;
    this.durationCount += 1;
  }

  attempt(outcome: AttemptOutcome): void {
    if (this.attempts !== null) this.attempts[OUTCOME_INDEX[outcome]]! += 1;
    if (outcome === 'connect_failure') this.events.emit('upstream_unavailable', 'error', { route: this.route }, this.unavailableMessage);
  }

  /** @internal scrape-time export */
  exportRequests(c: Counter<'route' | 'method' | 'code'>): void {
    for (let i = 0; i < this.requests.length; i++) {
      for (const [code, n] of this.requests[i] as Map<number, number>) c.labels(this.route, METHOD_LABELS[i] as string, String(code)).inc(n);
    }
  }

  /** @internal scrape-time export */
  exportAttempts(c: Counter<'route' | 'upstream' | 'outcome'>): void {
    if (this.attempts === null || this.upstream === null) return;
    for (let i = 0; i < ATTEMPT_OUTCOMES.length; i++) c.labels(this.route, this.upstream, ATTEMPT_OUTCOMES[i] as string).inc(this.attempts[i] as number);
  }

  retry(reason: RetryReason): void {
    this.retries[reason].inc();
    this.window.retry();
  }

  fallback(trigger: FallbackOn): void {
    this.fallbacks[trigger].inc();
    this.window.fallback(FALLBACK_INDEX[trigger]);
  }

  /** A response cut mid-body (the upstream broke off, or the body timed out): one event. */
  responseTruncated(): void {
    this.events.emit('response_truncated', 'error', { route: this.route }, 'the response was cut mid-body');
  }

  /** An unexpected error that became OUTRIGGER_INTERNAL: one critical event. */
  internalError(message: string): void {
    this.internalErrors.inc();
    this.events.emit('internal_error', 'critical', { route: this.route }, message);
  }

  timeout(kind: TimeoutMetricKind): void {
    this.timeouts[kind].inc();
    if (kind === 'total') this.events.emit('deadline_exceeded', 'warning', { route: this.route }, 'the route deadline passed before the response');
  }
}

const TRANSITION_EVENT: Record<BreakerState, [EventKind, Severity, string]> = {
  open: ['breaker_opened', 'error', 'breaker opened'],
  'half-open': ['breaker_half_opened', 'info', 'breaker half-open: sending a probe'],
  closed: ['breaker_closed', 'info', 'breaker closed'],
  isolated: ['breaker_isolated', 'warning', 'breaker isolated: held open until reset'],
};

export class BreakerMetrics {
  private readonly states: Record<BreakerState, GaugeChild>;
  private readonly transitions: Record<BreakerState, CounterChild>;
  readonly rejections: CounterChild;
  readonly flapping: GaugeChild;
  /** State changes seen, for flap sampling. */
  transitionCount = 0;
  /** Half-open probes that failed in a row (reset when the breaker closes). */
  failedProbesInARow = 0;
  /** The last states entered, oldest first (at most 32), for the flap pattern. */
  readonly entered: BreakerState[] = [];
  last: { from: BreakerState; to: BreakerState; at: Date } | null = null;
  private current: BreakerState = 'closed';

  constructor(
    private readonly m: Metrics,
    readonly name: string,
  ) {
    this.states = byKey(BREAKER_STATES, (s) => m.breakerState.labels(name, s));
    this.transitions = byKey(BREAKER_STATES, (s) => m.breakerTransitions.labels(name, s));
    this.rejections = m.breakerRejections.labels(name);
    this.rejections.inc(0);
    for (const s of BREAKER_STATES) this.transitions[s].inc(0);
    this.flapping = m.breakerFlapping.labels(name);
    this.flapping.set(0);
    this.setState('closed');
  }

  setState(state: BreakerState): void {
    for (const s of BREAKER_STATES) this.states[s].set(s === state ? 1 : 0);
  }

  transition(to: BreakerState): void {
    this.transitions[to].inc();
    this.setState(to);
    const from = this.current;
    this.current = to;
    this.transitionCount++;
    if (from === 'half-open' && to === 'open') this.failedProbesInARow++;
    else if (to === 'closed') this.failedProbesInARow = 0;
    this.entered.push(to);
    if (this.entered.length > 32) this.entered.shift();
    this.last = { from, to, at: new Date() };
    const [kind, severity, message] = TRANSITION_EVENT[to];
    this.m.events.emit(kind, severity, { breaker: this.name }, `${message} (was ${from})`);
  }
}

function byKey<K extends string, V>(keys: readonly K[], make: (k: K) => V): Record<K, V> {
  const out = {} as Record<K, V>;
  for (const k of keys) out[k] = make(k);
  return out;
}
