// Turns a validated config into the immutable runtime: compiled routes with their policy
// stacks, upstream pools and breakers. Built once per config load. On reload, breakers,
// pools, budgets, concurrency limiters and stale-if-error caches whose settings did not
// change are carried over, so state (breaker counts, in-flight slots, stored responses)
// survives.
import { bulkhead, type BulkheadPolicy } from 'cockatiel';
import type { EffectiveConfig, LoadedConfig } from './config/load.js';
import type { Metrics, RouteMetrics, BreakerMetrics } from './admin/metrics.js';
import { PROXY_CODES, UNMATCHED_CODES, UNMATCHED_ROUTE } from './admin/metrics.js';
import type { Logger } from './log.js';
import { BREAKER_STATES, Breaker } from './policies/breaker.js';
import { RetryBudget } from './policies/budget.js';
import { buildPipeline } from './policies/pipeline.js';
import { FallbackPlan } from './policies/fallback.js';
import { StaleCache, StalePlan } from './policies/stale-cache.js';
import type { CompiledRoute } from './proxy/exchange.js';
import { Router, compileMatcher } from './proxy/router.js';
import { Upstream } from './proxy/upstream.js';
import { CLOSE_REASONS, UPGRADE_OUTCOMES } from './proxy/websocket.js';
import { Attempt } from './proxy/attempt.js';
import { H2Attempt } from './proxy/h2-attempt.js';
import { upgradeAttempt } from './proxy/upgrade.js';
import type { Exchange, Reply } from './proxy/exchange.js';
import { DeadLetterPlan } from './policies/dead-letter.js';
import { Journal, journalFile } from './deadletter/journal.js';
import { UlidFactory } from './deadletter/ulid.js';
import { DEAD_LETTER_ON } from './config/schema.js';

/** One id source for the process, so ids stay strictly increasing across routes and reloads. */
const ulid = new UlidFactory();

interface Kept<T> {
  key: string;
  value: T;
}

export class Runtime {
  readonly router: Router<CompiledRoute>;
  readonly routes: CompiledRoute[];
  readonly unmatched: RouteMetrics;
  /** Access-log sampling rate, 0 when access logs are off or info is disabled. */
  readonly accessSample: number;

  /** Whether this request's access-log line is written (log.accessLog and its sample rate). */
  sampleAccess(): boolean {
    const s = this.accessSample;
    return s > 0 && (s >= 1 || Math.random() < s);
  }
  /** Dead-letter journals by route name (routes with deadLetter.enabled). */
  readonly journals = new Map<string, Journal>();
  private holds = 0;
  private onIdle: (() => void) | null = null;
  private idlePromise: Promise<void> | null = null;

  private constructor(
    readonly loaded: LoadedConfig,
    readonly upstreams: Map<string, Kept<Upstream>>,
    readonly breakers: Map<string, Kept<Breaker>>,
    private readonly bulkheads: Map<string, Kept<BulkheadPolicy>>,
    private readonly budgets: Map<string, Kept<RetryBudget>>,
    private readonly caches: Map<string, Kept<StaleCache>>,
    routes: CompiledRoute[],
    unmatched: RouteMetrics,
    accessSample: number,
    private readonly metrics: Metrics,
    private older: Runtime | null,
  ) {
    this.routes = routes;
    this.router = new Router(routes.map((r) => compileMatcher(r.config, r)));
    this.unmatched = unmatched;
    this.accessSample = accessSample;
  }

  get config(): EffectiveConfig {
    return this.loaded.config;
  }

  breaker(name: string): Breaker | undefined {
    return this.breakers.get(name)?.value;
  }

  static build(loaded: LoadedConfig, metrics: Metrics, log: Logger, previous: Runtime | null): Runtime {
    const cfg = loaded.config;
    const upstreams = new Map<string, Kept<Upstream>>();
    for (const [name, settings] of Object.entries(cfg.upstreams)) {
      const key = JSON.stringify(settings);
      const old = previous?.upstreams.get(name);
      upstreams.set(name, old && old.key === key ? old : { key, value: new Upstream(name, settings) });
    }

    const breakerMetrics = new Map<string, BreakerMetrics>();
    const breakers = new Map<string, Kept<Breaker>>();
    const bulkheads = new Map<string, Kept<BulkheadPolicy>>();
    const budgets = new Map<string, Kept<RetryBudget>>();
    const caches = new Map<string, Kept<StaleCache>>();
    const routes: CompiledRoute[] = [];
    const journals = new Map<string, Journal>();
    const oldJournals = new Map<string, Journal>();
    for (const j of previous?.journals.values() ?? []) oldJournals.set(j.file, j);

    for (const rc of cfg.routes) {
      let breaker: Breaker | null = null;
      if (rc.breaker.enabled) {
        const name = rc.breaker.name;
        const { name: _n, ...settings } = rc.breaker;
        const key = JSON.stringify(settings);
        let kept = breakers.get(name);
        if (!kept) {
          const old = previous?.breakers.get(name);
          if (old && old.key === key) {
            old.value.routes.length = 0;
            kept = old;
          } else {
            const bm = metrics.forBreaker(name);
            breakerMetrics.set(name, bm);
            kept = {
              key,
              value: new Breaker(name, rc.breaker, {
                onTransition: (b, from, to) => {
                  bm.transition(to);
                  log.warn({ breaker: b.name, from, to }, 'breaker state change');
                },
                onReject: () => bm.rejections.inc(),
              }),
            };
          }
          breakers.set(name, kept);
        }
        kept.value.routes.push(rc.name);
        breaker = kept.value;
      }

      const bkKey = JSON.stringify(rc.concurrency);
      const oldBk = previous?.bulkheads.get(rc.name);
      const bk = oldBk && oldBk.key === bkKey ? oldBk : { key: bkKey, value: bulkhead(rc.concurrency.max, rc.concurrency.queue) };
      bulkheads.set(rc.name, bk);

      const bgKey = JSON.stringify(rc.retry.budget);
      const oldBg = previous?.budgets.get(rc.name);
      const bg = oldBg && oldBg.key === bgKey ? oldBg : { key: bgKey, value: new RetryBudget(rc.retry.budget) };
      budgets.set(rc.name, bg);

      const upstream = (upstreams.get(rc.upstream) as Kept<Upstream>).value;
      // Series known in advance exist at 0 from the load that creates the route (README, Metrics).
      const rm = metrics.forRoute(rc.name, rc.upstream);
      rm.zeroCodes(rc.match.methods ?? null, rc.fallback?.staticResponse ? [...PROXY_CODES, rc.fallback.status] : PROXY_CODES);

      let stale: StalePlan | null = null;
      const sie = rc.fallback?.staleIfError;
      if (rc.fallback && sie) {
        // Stored responses stay valid only for the same upstream, the same mapping of client
        // paths to upstream paths, and the same breaker (its epoch numbers them).
        const key = JSON.stringify([sie, upstream.settings.endpoints, rc.rewritePrefix ?? null, rc.preserveHost]);
        const old = previous?.caches.get(rc.name);
        const kept = old && old.key === key && old.value.breaker === breaker ? old : { key, value: new StaleCache(sie, breaker, metrics.staleCacheBytes) };
        caches.set(rc.name, kept);
        stale = new StalePlan(kept.value, new Set(rc.fallback.on));
        rm.zeroStale();
      }
      if (rc.grpc) rm.zeroGrpc();
      if (rc.upgrades.includes('websocket')) rm.zeroUpgrades(UPGRADE_OUTCOMES, CLOSE_REASONS);
      let deadLetter: DeadLetterPlan | null = null;
      if (rc.deadLetter.enabled) {
        const journal = openJournal(rc.name, rc.deadLetter, oldJournals.get(journalFile(rc.deadLetter.dir, rc.name)), metrics, log);
        journals.set(rc.name, journal);
        const byReason = Object.fromEntries(DEAD_LETTER_ON.map((r) => [r, metrics.deadLetters.labels(rc.name, r)]));
        for (const r of rc.deadLetter.on) byReason[r]?.inc(0);
        for (const result of ['success', 'failure']) metrics.deadLettersReplayed.labels(rc.name, result).inc(0);
        deadLetter = new DeadLetterPlan(rc.deadLetter, rc.retry, {
          nextId: () => ulid.next(),
          record: (e) => {
            journal.record(e);
            byReason[e.reason]?.inc();
            metrics.events.emit('request_dead_lettered', 'error', { route: rc.name }, `a ${e.method} request ended in ${e.code} (delivery ${e.delivery}) and was dead-lettered as ${e.id}`);
          },
        });
      }
      const rewriteFrom = rc.rewritePrefix !== undefined ? (rc.match.pathPrefix ?? rc.match.path ?? null) : null;
      const parts = {
        name: rc.name,
        config: rc,
        upstream,
        breaker,
        bulkhead: bk.value,
        budget: bg.value,
        metrics: rm,
        rewriteFrom: rewriteFrom !== null && rewriteFrom.length > 1 && rewriteFrom.endsWith('/') ? rewriteFrom.slice(0, -1) : rewriteFrom,
        rewriteTo: rc.rewritePrefix ?? null,
        fallback: rc.fallback ? new FallbackPlan(rc.fallback) : null,
        stale,
        deadLetter,
      };
      // One stack per transport over the same policy objects: the HTTP request and the upgrade
      // handshake differ only in the attempt at the bottom.
      routes.push({ ...parts, handler: buildPipeline(parts, upstream.settings.protocol === 'http1' ? httpAttempt : h2Attempt), upgradeHandler: buildPipeline(parts, upgradeAttempt) });
    }

    const accessLog = cfg.log.accessLog;
    const sample = accessLog === false ? 0 : accessLog === true ? 1 : accessLog.sample;
    // Criticality belongs to routes, which a reload may change while it keeps the breaker.
    const critical = new Set(cfg.routes.filter((r) => r.critical && r.breaker.enabled).map((r) => r.breaker.name));
    for (const name of breakers.keys()) metrics.breakerCritical.labels(name).set(critical.has(name) ? 1 : 0);

    const rt = new Runtime(
      loaded,
      upstreams,
      breakers,
      bulkheads,
      budgets,
      caches,
      routes,
      unmatchedMetrics(metrics),
      log.isLevelEnabled('info') ? sample : 0,
      metrics,
      previous,
    );
    for (const [name, j] of journals) rt.journals.set(name, j);
    return rt;
  }

  /** Writes out and closes the dead-letter journals (shutdown, drain). */
  async closeJournals(): Promise<void> {
    await Promise.all([...this.journals.values()].map((j) => j.close()));
  }

  /**
   * Counts a request that started under this runtime, until its response closes
   * (`release`). Such a request may still send attempts (a body still uploading, a retry
   * after backoff) after a reload, on this runtime's pools. A plain counter: this runs on
   * every request.
   */
  acquire(): void {
    this.holds++;
  }

  release(): void {
    if (--this.holds === 0) this.onIdle?.();
  }

  /**
   * Resolves once no request of this runtime, nor of an older one, is open: a pool an older
   * runtime shared with this one is in use by the older runtime's requests too.
   */
  private idle(): Promise<void> {
    this.idlePromise ??= Promise.all([
      this.holds === 0 ? Promise.resolve() : new Promise<void>((resolve) => (this.onIdle = resolve)),
      this.older?.idle(),
    ]).then(() => {
      this.older = null;
    });
    return this.idlePromise;
  }

  /** Closes the pools of upstreams the next runtime no longer uses, once they are idle. */
  async retire(next: Runtime | null): Promise<void> {
    // Breakers of removed routes are gone: drop their series too, or a dashboard would
    // show (and alert on) the last state of a breaker that no longer exists.
    const m = this.metrics;
    for (const name of this.breakers.keys()) {
      if (next?.breakers.has(name)) continue;
      for (const state of BREAKER_STATES) {
        m.breakerState.remove({ breaker: name, state });
        m.breakerTransitions.remove({ breaker: name, to: state });
      }
      m.breakerRejections.remove({ breaker: name });
      m.breakerCritical.remove({ breaker: name });
    }
    // A cache the next runtime did not keep is emptied now (its bytes leave the gauge); a
    // request of this runtime still streaming into it can no longer store.
    for (const [name, kept] of this.caches) if (next?.caches.get(name)?.value !== kept.value) kept.value.close();
    // Journals of routes that no longer record: closed once their last request has finished.
    const kept = new Set([...(next?.journals.values() ?? [])]);
    const dropped = [...this.journals.values()].filter((j) => !kept.has(j));
    if (dropped.length > 0) {
      void this.idle().then(() => Promise.all(dropped.map((j) => j.close())));
      for (const j of dropped) {
        m.deadLetterBytes.remove({ route: j.route });
      }
    }
    // Asked for even with nothing to close: once it resolves, this runtime lets go of the
    // older ones, so a run of reloads does not keep every past runtime alive.
    const idle = this.idle();
    const removed = [...this.upstreams].filter(([name, kept]) => next?.upstreams.get(name)?.value !== kept.value);
    if (removed.length === 0) return;
    await idle;
    await Promise.all(removed.map(([, kept]) => kept.value.close()));
  }
}

function unmatchedMetrics(metrics: Metrics): RouteMetrics {
  const rm = metrics.forRoute(UNMATCHED_ROUTE, null);
  rm.zeroCodes(null, UNMATCHED_CODES);
  return rm;
}

/** The route's journal: the previous runtime's when the file is the same, else opened (read) now. */
function openJournal(route: string, settings: EffectiveConfig['routes'][number]['deadLetter'], old: Journal | undefined, metrics: Metrics, log: Logger): Journal {
  if (old !== undefined) {
    old.configure(settings);
    return old;
  }
  const evicted = metrics.deadLettersEvicted.labels(route);
  evicted.inc(0);
  const torn = metrics.deadLetterTorn.labels(route);
  torn.inc(0);
  const bytes = metrics.deadLetterBytes.labels(route);
  const journal = new Journal(route, settings, {
    evicted: (e, why) => {
      evicted.inc();
      log.warn({ route, id: e.id, why, event: 'dead_letters_evicted' }, `dead-letter journal full (${why}): evicted the oldest entry`);
      metrics.events.emit('dead_letters_evicted', 'critical', { route }, `the dead-letter journal is full (${why}); the oldest entries are being evicted`, false);
    },
    bytes: (n) => bytes.set(n),
    error: (err, what) => log.error({ err, route }, `dead-letter journal: ${what} failed`),
  });
  const skipped = journal.tornRecords + journal.corruptRecords;
  if (skipped > 0) {
    torn.inc(skipped);
    log.warn({ route, file: journal.file, tornRecords: journal.tornRecords, corruptRecords: journal.corruptRecords }, 'dead-letter journal: skipped records that were torn (a crash mid-write) or failed their checksum');
  }
  log.info({ route, file: journal.file, entries: journal.size }, 'dead-letter journal opened');
  return journal;
}

/** The HTTP/2 attempt (node:http2 sessions), for upstreams with protocol h2c or h2. */
function h2Attempt(ex: Exchange, endpoint: number, probe: boolean): Promise<Reply> {
  return new H2Attempt(ex, endpoint, probe).run();
}

function httpAttempt(ex: Exchange, endpoint: number, probe: boolean): Promise<Reply> {
  return new Attempt(ex, endpoint, probe).run();
}
