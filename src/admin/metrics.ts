// Prometheus metrics on one registry of our own (never prom-client's global). Labels are
// declared up front and take only config names and closed enums.
//
// The four series touched by every request (requests, duration, attempts, in-flight) are
// plain numbers on RouteMetrics. prom-client hashes and validates the labels on every
// inc/observe, even on a child; measured with callgrind, that was the largest cost on the
// request path after node's own HTTP work. Every per-route family is plain numbers (on
// RouteMetrics, or on the RouteGroup of its route name) that a RouteFamily renders as
// exposition text itself, keeping each route's lines until its numbers move: at 1,000
// routes, handing their 120k samples to prom-client took a 400 ms scrape, most of it
// rebuilding and formatting labels.
import { readFileSync } from 'node:fs';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ATTEMPT_OUTCOMES, type AttemptOutcome } from '../exchange/outcome.js';
import { BREAKER_STATES, type BreakerState } from '../policies/breaker.js';
import { HTTP_METHODS, FALLBACK_ON, type FallbackOn } from '../config/schema.js';
import { EVENT_KINDS, EventLog, type EventKind, type Severity } from '../events/event-log.js';
import { RouteWindow } from './window.js';
import { escapeLabelValue, formatValue, writeExposition, type TextFamily } from './exposition.js';

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
const RETRY_INDEX = Object.fromEntries(RETRY_REASONS.map((r, i) => [r, i])) as Record<RetryReason, number>;
const TIMEOUT_INDEX = Object.fromEntries(TIMEOUT_KINDS.map((k, i) => [k, i])) as Record<TimeoutMetricKind, number>;
const GRPC_CODES = Array.from({ length: 17 }, (_, i) => String(i));
export { DURATION_BUCKETS };
const METHOD_INDEX = new Map<string, number>(HTTP_METHODS.map((m, i) => [m, i]));
const METHOD_LABELS: string[] = [...HTTP_METHODS, OTHER_METHOD];

export class Metrics {
  readonly registry = new Registry();
  /** One RouteMetrics per (route, upstream), kept across reloads so counters never go back. */
  private readonly routes = new Map<string, RouteMetrics>();
  /** The route names of those, first seen first (a route's series sum over its upstreams). */
  private readonly groups: RouteGroup[] = [];
  private readonly groupOf = new Map<string, RouteGroup>();
  // Per-route families below are declarations (name, help, labels, order): the constructor
  // puts a RouteFamily in place of each in the registry.
  readonly requests = new Counter({
    name: 'outrigger_requests_total',
    help: 'Requests answered, by route, method and final status code (499: the client went away).',
    labelNames: ['route', 'method', 'code'] as const,
    registers: [this.registry],
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
  /** Where outrigger_log_lines_dropped_total reads from; app.ts points it at log.ts. */
  droppedLogLines: () => number = () => 0;
  readonly logLinesDropped = new Counter({
    name: 'outrigger_log_lines_dropped_total',
    help: 'Log lines (access log included) dropped because stdout did not keep up and its buffer was full.',
    registers: [this.registry],
    collect: () => {
      this.logLinesDropped.reset();
      this.logLinesDropped.inc(this.droppedLogLines());
    },
  });
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
    const g = this.groups;
    const one = [''];
    const families: RouteFamily[] = [
      new RequestsFamily(this.requests, g),
      new DurationFamily(this.duration, g),
      new AttemptsFamily(this.attempts, g),
      new SeriesFamily(this.retries, g, RETRY_REASONS, (r) => r.retries),
      new SeriesFamily(this.budgetExhausted, g, one, (r) => r.singles, EXHAUSTED),
      new SeriesFamily(this.fallbacks, g, FALLBACK_ON, (r) => r.fallbacks),
      new SeriesFamily(this.timeouts, g, TIMEOUT_KINDS, (r) => r.timeouts),
      new SeriesFamily(this.overload, g, one, (r) => r.singles, OVERLOAD),
      new SeriesFamily(this.internalErrors, g, one, (r) => r.singles, INTERNAL_ERRORS),
      new SeriesFamily(this.truncated, g, one, (r) => r.singles, TRUNCATED),
      new SeriesFamily(this.grpcResponses, g, GRPC_CODES, (r) => r.grpc),
      new SeriesFamily(this.staleServed, g, one, (r) => r.optional, STALE),
      new SeriesFamily(this.inflight, g, one, inflightOf),
      new SeriesFamily(this.wsConnections, g, one, (r) => r.optional, WS_CONNECTIONS),
      new MapFamily(this.wsUpgrades, g, (r) => r.wsUpgrades),
      new MapFamily(this.wsClosed, g, (r) => r.wsClosed),
    ];
    // In place, so the families keep the order they are declared in.
    const byName = new Map(families.map((f) => [f.name, f]));
    const declared = this.registry.getMetricsAsArray();
    this.registry.clear();
    for (const m of declared) this.registry.registerMetric((byName.get((m as unknown as { name: string }).name) ?? m) as unknown as Counter<string>);
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

  /**
   * Writes the /metrics text (what registry.metrics() prints) a chunk at a time, letting the
   * event loop run between chunks; `write` may return a promise to pace it (a socket's drain).
   */
  scrape(write: (chunk: Buffer) => void | Promise<void>): Promise<void> {
    return writeExposition(this.registry, write);
  }

  /** The /metrics text as one string, written the way scrape() writes it. */
  async text(): Promise<string> {
    const chunks: Buffer[] = [];
    await this.scrape((chunk) => void chunks.push(chunk));
    return Buffer.concat(chunks).toString('utf8');
  }

  forRoute(route: string, upstream: string | null): RouteMetrics {
    const key = `${route}\u0000${upstream ?? ''}`;
    let rm = this.routes.get(key);
    if (!rm) {
      let group = this.groupOf.get(route);
      if (!group) {
        this.groupOf.set(route, (group = new RouteGroup(route, this.groups.length)));
        this.groups.push(group);
      }
      this.routes.set(key, (rm = new RouteMetrics(this, route, upstream, group)));
      group.members.push(rm);
    }
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

const LE_LABELS = [...DURATION_BUCKETS.map(String), '+Inf'];
// Indexes into RouteGroup.singles (series every route has) and RouteGroup.optional.
const EXHAUSTED = 0;
const OVERLOAD = 1;
const INTERNAL_ERRORS = 2;
const TRUNCATED = 3;
const STALE = 0;
const WS_CONNECTIONS = 1;
/** Routes per batch of a RouteFamily: well under a millisecond once compiled, every route re-rendered. */
const ROUTES_PER_BATCH = 16;

/**
 * The series of one route name that its RouteMetrics share: a route moved to another
 * upstream by a reload has a second RouteMetrics, and these counts carry on across it.
 * `undefined` is a series that does not exist yet.
 */
export class RouteGroup {
  readonly members: RouteMetrics[] = [];
  /** By RETRY_REASONS, FALLBACK_ON and TIMEOUT_KINDS index. */
  readonly retries = new Float64Array(RETRY_REASONS.length);
  readonly fallbacks = new Float64Array(FALLBACK_ON.length);
  readonly timeouts = new Float64Array(TIMEOUT_KINDS.length);
  /** By EXHAUSTED, OVERLOAD, INTERNAL_ERRORS and TRUNCATED. */
  readonly singles = new Float64Array(4);
  /** By STALE and WS_CONNECTIONS: series a route has only once configured or used so. */
  readonly optional: Array<number | undefined> = [undefined, undefined];
  /** By grpc-status, for routes that saw gRPC. */
  grpc: Array<number | undefined> | null = null;
  readonly wsUpgrades = new Map<string, number>();
  readonly wsClosed = new Map<string, number>();
  /** The route name as a label value, escaped. */
  readonly label: string;

  constructor(
    readonly route: string,
    /** Position in Metrics' groups: where each family keeps this route's rendered lines. */
    readonly index: number,
  ) {
    this.label = escapeLabelValue(route);
  }

  /** Request counts of one method (index in METHOD_LABELS) by code, summed over the members. */
  requestCountsOf(method: number): ReadonlyMap<number, number> {
    if (this.members.length === 1) return (this.members[0] as RouteMetrics).requestCounts()[method] as ReadonlyMap<number, number>;
    const sum = new Map<number, number>();
    for (const rm of this.members) (rm.requestCounts()[method] as ReadonlyMap<number, number>).forEach((n, code) => sum.set(code, (sum.get(code) ?? 0) + n));
    return sum;
  }

  /** Non-cumulative duration counts (DURATION_BUCKETS then +Inf), sum and count, over the members. */
  durationTotals(): { counts: ArrayLike<number>; sum: number; count: number } {
    if (this.members.length === 1) {
      const rm = this.members[0] as RouteMetrics;
      return { counts: rm.durationCounts, sum: rm.durationSum, count: rm.durationCount };
    }
    const counts = new Float64Array(DURATION_BUCKETS.length + 1);
    let sum = 0;
    let count = 0;
    for (const rm of this.members) {
      for (let i = 0; i < counts.length; i++) counts[i]! += rm.durationCounts[i] as number;
      sum += rm.durationSum;
      count += rm.durationCount;
    }
    return { counts, sum, count };
  }
}

/** The route's requests in flight over its members, in an array reused from call to call. */
const inflightNow = [0];
function inflightOf(g: RouteGroup): ArrayLike<number> {
  let n = 0;
  for (const rm of g.members) n += rm.inflight;
  inflightNow[0] = n;
  return inflightNow;
}

type Sample = { metricName?: string; labels: Record<string, string>; value: number };
const EMPTY = Buffer.alloc(0);

/**
 * A per-route family rendered from plain numbers, registered in place of its declaration
 * (same name, help, type, labels). pieces() is what a scrape writes (exposition.ts): each
 * route's lines, kept as rendered with the numbers they show, and rendered again only when
 * those numbers moved; an idle route costs a comparison of its numbers. get() gives the same
 * samples in the same order to prom-client's own formatter (registry.metrics(),
 * getMetricsAsJSON), which the tests hold the scrape's text to.
 */
abstract class RouteFamily implements TextFamily {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  readonly labelNames: readonly string[];
  readonly aggregator = 'sum';
  /** By `at` (group index × segments + segment): the lines as last rendered. */
  private readonly texts: Array<Buffer | undefined> = [];

  constructor(
    decl: object,
    private readonly groups: readonly RouteGroup[],
    /** Parts of a route's lines kept apart (requests: one per method), so traffic re-renders only its own. */
    private readonly segments = 1,
  ) {
    const d = decl as { name: string; help: string; type: string; labelNames: readonly string[] };
    this.name = d.name;
    this.help = d.help;
    this.type = d.type;
    this.labelNames = d.labelNames;
  }

  *pieces(): Generator<Buffer[]> {
    // Routes are only ever added: those there when the scrape reached this family.
    const groups = this.groups;
    const n = groups.length;
    for (let i = 0; i < n; i += ROUTES_PER_BATCH) {
      const batch: Buffer[] = [];
      for (let j = i; j < n && j < i + ROUTES_PER_BATCH; j++) {
        const g = groups[j] as RouteGroup;
        for (let seg = 0; seg < this.segments; seg++) {
          const at = j * this.segments + seg;
          let text = this.texts[at];
          if (text === undefined || this.moved(g, seg, at)) {
            const s = this.render(g, seg);
            this.texts[at] = text = s === '' ? EMPTY : Buffer.from(s);
            this.remember(g, seg, at);
          }
          if (text.length > 0) batch.push(text);
        }
      }
      yield batch;
    }
  }

  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: Sample[] }> {
    const values: Sample[] = [];
    for (const g of this.groups) for (let seg = 0; seg < this.segments; seg++) this.samples(g, seg, values);
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }

  reset(): void {}

  /** Whether the numbers (or series) of this part of the route differ from those remembered at `at`. */
  protected abstract moved(g: RouteGroup, seg: number, at: number): boolean;
  /** Remembers them at `at`, as just rendered. */
  protected abstract remember(g: RouteGroup, seg: number, at: number): void;
  /** The lines, each "\n<series> <value>". */
  protected abstract render(g: RouteGroup, seg: number): string;
  /** The same samples as prom-client values. */
  protected abstract samples(g: RouteGroup, seg: number, out: Sample[]): void;
}

/**
 * One series per route (labels: route), or one per route and value of a second label
 * (`keys`, in that order): the numbers are read(g)[offset + i], undefined for a series that
 * does not exist yet; read(g) null: none of them does.
 */
class SeriesFamily extends RouteFamily {
  /** The labels after route, rendered: `,reason="reset"`, or nothing. */
  private readonly rest: string[];
  private readonly label: string | undefined;
  private readonly seen: Array<Array<number | undefined> | null> = [];

  constructor(
    decl: object,
    groups: readonly RouteGroup[],
    private readonly keys: readonly string[],
    private readonly read: (g: RouteGroup) => ArrayLike<number | undefined> | null,
    private readonly offset = 0,
  ) {
    super(decl, groups);
    const label = (this.label = this.labelNames[1]);
    this.rest = keys.map((k) => (label === undefined ? '' : `,${label}="${escapeLabelValue(k)}"`));
  }

  protected moved(g: RouteGroup, _seg: number, at: number): boolean {
    const now = this.read(g);
    const was = this.seen[at];
    if (now === null || was === null || was === undefined) return now !== was;
    for (let i = 0; i < was.length; i++) if (was[i] !== now[this.offset + i]) return true;
    return false;
  }

  protected remember(g: RouteGroup, _seg: number, at: number): void {
    const now = this.read(g);
    if (now === null) return void (this.seen[at] = null);
    const was = (this.seen[at] ??= []);
    for (let i = 0; i < this.keys.length; i++) was[i] = now[this.offset + i];
  }

  protected render(g: RouteGroup): string {
    const now = this.read(g);
    if (now === null) return '';
    let s = '';
    for (let i = 0; i < this.keys.length; i++) {
      const v = now[this.offset + i];
      if (v !== undefined) s += `\n${this.name}{route="${g.label}"${this.rest[i] as string}} ${formatValue(v)}`;
    }
    return s;
  }

  protected samples(g: RouteGroup, _seg: number, out: Sample[]): void {
    const now = this.read(g);
    if (now === null) return;
    for (let i = 0; i < this.keys.length; i++) {
      const v = now[this.offset + i];
      if (v !== undefined) out.push({ labels: this.label === undefined ? { route: g.route } : { route: g.route, [this.label]: this.keys[i] as string }, value: v });
    }
  }
}

/** Label value then count, flat, in the map's order (insertion: the order series appeared). */
function sameEntries<K>(map: ReadonlyMap<K, number>, was: ReadonlyArray<K | number> | undefined): boolean {
  if (was === undefined || was.length !== 2 * map.size) return false;
  let i = 0;
  let same = true;
  map.forEach((n, k) => {
    if (same && (was[i] !== k || was[i + 1] !== n)) same = false;
    i += 2;
  });
  return same;
}

function entriesOf<K>(map: ReadonlyMap<K, number>, into: Array<K | number>): void {
  into.length = 0;
  map.forEach((n, k) => into.push(k, n));
}

/** Labels route and one more whose values are learnt as they come (the map's keys, in order). */
class MapFamily extends RouteFamily {
  private readonly label: string;
  /** By label value: the label rendered, `,outcome="accepted"`. */
  private readonly rest = new Map<string, string>();
  private readonly seen: Array<Array<string | number>> = [];

  constructor(
    decl: object,
    groups: readonly RouteGroup[],
    private readonly counts: (g: RouteGroup) => ReadonlyMap<string, number>,
  ) {
    super(decl, groups);
    this.label = this.labelNames[1] as string;
  }

  protected moved(g: RouteGroup, _seg: number, at: number): boolean {
    return !sameEntries(this.counts(g), this.seen[at]);
  }

  protected remember(g: RouteGroup, _seg: number, at: number): void {
    entriesOf(this.counts(g), (this.seen[at] ??= []));
  }

  protected render(g: RouteGroup): string {
    let s = '';
    this.counts(g).forEach((n, k) => {
      let rest = this.rest.get(k);
      if (rest === undefined) this.rest.set(k, (rest = `,${this.label}="${escapeLabelValue(k)}"`));
      s += `\n${this.name}{route="${g.label}"${rest}} ${formatValue(n)}`;
    });
    return s;
  }

  protected samples(g: RouteGroup, _seg: number, out: Sample[]): void {
    this.counts(g).forEach((n, k) => out.push({ labels: { route: g.route, [this.label]: k }, value: n }));
  }
}

/** outrigger_requests_total, a segment per method. */
class RequestsFamily extends RouteFamily {
  /** By method index: the labels up to the code's value, `",method="GET",code="`. */
  private readonly method = METHOD_LABELS.map((m) => `",method="${m}",code="`);
  private readonly seen: Array<number[]> = [];

  constructor(decl: object, groups: readonly RouteGroup[]) {
    super(decl, groups, METHOD_LABELS.length);
  }

  protected moved(g: RouteGroup, seg: number, at: number): boolean {
    return !sameEntries(g.requestCountsOf(seg), this.seen[at]);
  }

  protected remember(g: RouteGroup, seg: number, at: number): void {
    entriesOf(g.requestCountsOf(seg), (this.seen[at] ??= []));
  }

  protected render(g: RouteGroup, seg: number): string {
    const head = `\n${this.name}{route="${g.label}${this.method[seg] as string}`;
    let s = '';
    g.requestCountsOf(seg).forEach((n, code) => (s += `${head}${code}"} ${formatValue(n)}`));
    return s;
  }

  protected samples(g: RouteGroup, seg: number, out: Sample[]): void {
    g.requestCountsOf(seg).forEach((n, code) => out.push({ labels: { route: g.route, method: METHOD_LABELS[seg] as string, code: String(code) }, value: n }));
  }
}

/** outrigger_upstream_attempts_total: a series per outcome for each upstream the route had. */
class AttemptsFamily extends RouteFamily {
  /** By upstream name: the label rendered, escaped. */
  private readonly upstreams = new Map<string, string>();
  /** By group index: the counts of each member with an upstream, one after the other. */
  private readonly seen: Array<number[]> = [];

  protected moved(g: RouteGroup, _seg: number, at: number): boolean {
    const was = this.seen[at];
    if (was === undefined) return true;
    let i = 0;
    for (const rm of g.members) {
      const counts = rm.attemptCounts();
      if (counts === null) continue;
      for (let o = 0; o < counts.length; o++) if (was[i++] !== counts[o]) return true;
    }
    return i !== was.length;
  }

  protected remember(g: RouteGroup, _seg: number, at: number): void {
    const was = (this.seen[at] ??= []);
    was.length = 0;
    for (const rm of g.members) {
      const counts = rm.attemptCounts();
      if (counts !== null) for (let o = 0; o < counts.length; o++) was.push(counts[o] as number);
    }
  }

  protected render(g: RouteGroup): string {
    let s = '';
    for (const rm of g.members) {
      const counts = rm.attemptCounts();
      if (counts === null || rm.upstream === null) continue;
      let u = this.upstreams.get(rm.upstream);
      if (u === undefined) this.upstreams.set(rm.upstream, (u = escapeLabelValue(rm.upstream)));
      const head = `\n${this.name}{route="${g.label}",upstream="${u}",outcome="`;
      for (let o = 0; o < counts.length; o++) s += `${head}${ATTEMPT_OUTCOMES[o] as string}"} ${formatValue(counts[o] as number)}`;
    }
    return s;
  }

  protected samples(g: RouteGroup, _seg: number, out: Sample[]): void {
    for (const rm of g.members) {
      const counts = rm.attemptCounts();
      if (counts === null || rm.upstream === null) continue;
      for (let o = 0; o < counts.length; o++) out.push({ labels: { route: g.route, upstream: rm.upstream, outcome: ATTEMPT_OUTCOMES[o] as string }, value: counts[o] as number });
    }
  }
}

/** outrigger_request_duration_seconds, the le label first as prom-client's Histogram has it. */
class DurationFamily extends RouteFamily {
  /** By group index: the non-cumulative count per bound then +Inf, the sum, the count. */
  private readonly seen: Array<Float64Array> = [];

  protected moved(g: RouteGroup, _seg: number, at: number): boolean {
    const was = this.seen[at];
    if (was === undefined) return true;
    const { counts, sum, count } = g.durationTotals();
    const n = counts.length;
    if (was[n + 1] !== count || was[n] !== sum) return true;
    for (let i = 0; i < n; i++) if (was[i] !== counts[i]) return true;
    return false;
  }

  protected remember(g: RouteGroup, _seg: number, at: number): void {
    const { counts, sum, count } = g.durationTotals();
    const was = (this.seen[at] ??= new Float64Array(counts.length + 2));
    for (let i = 0; i < counts.length; i++) was[i] = counts[i] as number;
    was[counts.length] = sum;
    was[counts.length + 1] = count;
  }

  protected render(g: RouteGroup): string {
    const { counts, sum, count } = g.durationTotals();
    let s = '';
    let acc = 0;
    for (let i = 0; i < LE_LABELS.length; i++) s += `\n${this.name}_bucket{le="${LE_LABELS[i] as string}",route="${g.label}"} ${formatValue((acc += counts[i] as number))}`;
    return `${s}\n${this.name}_sum{route="${g.label}"} ${formatValue(sum)}\n${this.name}_count{route="${g.label}"} ${formatValue(count)}`;
  }

  protected samples(g: RouteGroup, _seg: number, out: Sample[]): void {
    const { counts, sum, count } = g.durationTotals();
    let acc = 0;
    for (let i = 0; i < LE_LABELS.length; i++) out.push({ metricName: `${this.name}_bucket`, labels: { le: LE_LABELS[i] as string, route: g.route }, value: (acc += counts[i] as number) });
    out.push({ metricName: `${this.name}_sum`, labels: { route: g.route }, value: sum });
    out.push({ metricName: `${this.name}_count`, labels: { route: g.route }, value: count });
  }
}

export class RouteMetrics {
  /** Requests in flight now (outrigger_inflight_requests). */
  inflight = 0;
  /** Per-second buckets over five minutes, for /stats and health levels. */
  readonly window = new RouteWindow(DURATION_BUCKETS, FALLBACK_ON.length);
  /** Counts outrigger_retry_budget_exhausted_total, the window and the event. */
  readonly budgetExhausted: { inc(): void };
  readonly overload: { inc(): void };
  /** outrigger_responses_truncated_total{route}, and the response_truncated event. */
  readonly truncated: { inc(): void };
  private readonly events: EventLog;
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
    m: Metrics,
    readonly route: string,
    readonly upstream: string | null,
    /** The series this route name's RouteMetrics share; all exist (at 0) from the start. */
    private readonly group: RouteGroup,
  ) {
    const events = m.events;
    this.events = events;
    this.unavailableMessage = `cannot connect to upstream ${upstream ?? ''}`.trimEnd();
    this.budgetExhausted = {
      inc: () => {
        group.singles[EXHAUSTED]! += 1;
        this.window.exhausted();
        events.emit('retry_budget_exhausted', 'warning', { route }, 'retry refused: the route retry budget is spent');
      },
    };
    this.overload = {
      inc: () => {
        group.singles[OVERLOAD]! += 1;
      },
    };
    this.truncated = {
      inc: () => {
        group.singles[TRUNCATED]! += 1;
        this.responseTruncated();
      },
    };
    this.requests = METHOD_LABELS.map(() => new Map());
    this.attempts = upstream === null ? null : new Float64Array(ATTEMPT_OUTCOMES.length);
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
    const list = (this.group.grpc ??= []);
    for (let code = 0; code <= 16; code++) list[code] ??= 0;
  }

  /** A gRPC call ended with this grpc-status (a value outside 0..16 counts as 2 UNKNOWN). */
  grpcResponse(code: number): void {
    const list = (this.group.grpc ??= []);
    const c = Number.isInteger(code) && code >= 0 && code <= 16 ? code : 2;
    list[c] = (list[c] ?? 0) + 1;
  }

  /** outrigger_stale_served_total at 0, for a route that enables fallback.staleIfError. */
  zeroStale(): void {
    this.group.optional[STALE] ??= 0;
  }

  staleServed(): void {
    const o = this.group.optional;
    o[STALE] = (o[STALE] ?? 0) + 1;
  }

  /** WebSocket upgrade and close series at 0, for a route that accepts WebSocket upgrades. */
  zeroUpgrades(outcomes: readonly string[], reasons: readonly string[]): void {
    const g = this.group;
    for (const o of outcomes) if (!g.wsUpgrades.has(o)) g.wsUpgrades.set(o, 0);
    for (const r of reasons) if (!g.wsClosed.has(r)) g.wsClosed.set(r, 0);
    g.optional[WS_CONNECTIONS] ??= 0;
  }

  /** A finished WebSocket handshake (outrigger_websocket_upgrades_total). */
  wsUpgrade(outcome: string): void {
    const counts = this.group.wsUpgrades;
    counts.set(outcome, (counts.get(outcome) ?? 0) + 1);
  }

  wsOpened(): void {
    const o = this.group.optional;
    o[WS_CONNECTIONS] = (o[WS_CONNECTIONS] ?? 0) + 1;
  }

  wsClosed(reason: string): void {
    const g = this.group;
    g.optional[WS_CONNECTIONS] = (g.optional[WS_CONNECTIONS] ?? 0) - 1;
    g.wsClosed.set(reason, (g.wsClosed.get(reason) ?? 0) + 1);
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

  /** @internal scrape-time read: counts by method index (METHOD_LABELS), then status code. */
  requestCounts(): ReadonlyArray<ReadonlyMap<number, number>> {
    return this.requests;
  }

  /** @internal scrape-time read: counts by ATTEMPT_OUTCOMES index; null without an upstream. */
  attemptCounts(): Readonly<Float64Array> | null {
    return this.attempts;
  }

  retry(reason: RetryReason): void {
    this.group.retries[RETRY_INDEX[reason]]! += 1;
    this.window.retry();
  }

  fallback(trigger: FallbackOn): void {
    this.group.fallbacks[FALLBACK_INDEX[trigger]]! += 1;
    this.window.fallback(FALLBACK_INDEX[trigger]);
  }

  /** A response cut mid-body (the upstream broke off, or the body timed out): one event. */
  responseTruncated(): void {
    this.events.emit('response_truncated', 'error', { route: this.route }, 'the response was cut mid-body');
  }

  /** An unexpected error that became OUTRIGGER_INTERNAL: one critical event. */
  internalError(message: string): void {
    this.group.singles[INTERNAL_ERRORS]! += 1;
    this.events.emit('internal_error', 'critical', { route: this.route }, message);
  }

  timeout(kind: TimeoutMetricKind): void {
    this.group.timeouts[TIMEOUT_INDEX[kind]]! += 1;
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
