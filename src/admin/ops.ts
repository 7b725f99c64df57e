// The operator views' model: /stats (the status page's only data source), the health
// levels of routes, and the flap detector of each breaker. Reads the runtime through the
// small OpsRuntime shape below, and the rolling windows and event ring kept by Metrics.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FALLBACK_ON } from '../config/schema.js';
import { SEVERITIES, type Severity } from '../events/event-log.js';
import { FlapDetector, classifyPattern, type FlapPattern } from '../policies/flapping.js';
import type { BreakerSnapshot, BreakerState } from '../policies/breaker.js';
import { DURATION_BUCKETS, type Metrics, type RouteMetrics } from './metrics.js';
import { quantileMs, round } from './window.js';

export type HealthLevel = 'ok' | 'warning' | 'critical';
const LEVELS: readonly HealthLevel[] = ['ok', 'warning', 'critical'];

export interface ErrorRatioThresholds {
  warning: number;
  critical: number;
  window: number;
  minRequests: number;
}

interface OpsBreaker {
  readonly name: string;
  readonly state: BreakerState;
  readonly openForMs: number;
  dampFactor: number;
  readonly settings: { halfOpenAfter: number | { base: number; max: number } };
  snapshot(): BreakerSnapshot;
}

interface OpsRoute {
  readonly name: string;
  readonly config: { concurrency: { max: number; queue: number }; health: { errorRatio: ErrorRatioThresholds } };
  readonly metrics: RouteMetrics;
  readonly breaker: OpsBreaker | null;
  readonly budget: { readonly settings: { enabled: boolean }; usage(): { used: number; allowed: number } };
}

export interface OpsRuntime {
  readonly routes: readonly OpsRoute[];
  /** Dead-letter journals by route (routes with deadLetter.enabled). */
  readonly journals?: ReadonlyMap<string, { stats(): { entries: number; pending: number; evicted: number } }>;
  readonly breakers: ReadonlyMap<string, { value: OpsBreaker }>;
  readonly loaded: { path: string; hash: string; loadedAt: Date };
  readonly config: { flapping: { interval: number; high: number; low: number; damp: boolean; dampFactor: number } };
}

export interface FlapReport {
  breaker: string;
  percent: number;
  pattern: FlapPattern;
  since: string;
}

let versionCache: string | undefined;
function version(): string {
  if (versionCache === undefined) {
    try {
      const here = dirname(fileURLToPath(import.meta.url));
      versionCache = (JSON.parse(readFileSync(join(here, '..', '..', 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      versionCache = 'unknown';
    }
  }
  return versionCache;
}

export class Operations {
  private readonly flaps = new Map<string, FlapDetector>();
  private readonly levels = new Map<string, HealthLevel>();
  private flapTimer: NodeJS.Timeout | null = null;
  private flapInterval = 0;
  private healthTimer: NodeJS.Timeout | null = null;
  private readonly startedAt = Date.now();
  lastReload: { at: string; result: 'success' | 'rejected'; problems?: string[] } | null = null;

  constructor(
    private readonly metrics: Metrics,
    private readonly runtime: () => OpsRuntime,
    private readonly draining: () => boolean,
  ) {}

  get events(): Metrics['events'] {
    return this.metrics.events;
  }

  /** Starts the samplers; called again after a reload, it follows a new flapping.interval. */
  start(): void {
    const interval = this.runtime().config.flapping.interval;
    if (this.flapTimer === null || interval !== this.flapInterval) {
      if (this.flapTimer) clearInterval(this.flapTimer);
      this.flapInterval = interval;
      this.flapTimer = setInterval(() => this.sampleBreakers(), interval);
      this.flapTimer.unref();
    }
    if (this.healthTimer === null) {
      this.healthTimer = setInterval(() => this.evaluateHealth(), 1000);
      this.healthTimer.unref();
    }
  }

  stop(): void {
    if (this.flapTimer) clearInterval(this.flapTimer);
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.flapTimer = this.healthTimer = null;
  }

  /** Records a reload's result as an event; app.ts has written its log line already. */
  reloaded(problems: string[]): void {
    const at = new Date().toISOString();
    if (problems.length === 0) {
      this.lastReload = { at, result: 'success' };
      this.metrics.events.emit('config_reload_succeeded', 'info', {}, `config reloaded (hash ${this.runtime().loaded.hash.slice(0, 12)})`, false);
    } else {
      this.lastReload = { at, result: 'rejected', problems };
      this.metrics.events.emit('config_reload_failed', 'error', {}, `config reload rejected: ${problems.join('; ')}`, false);
    }
  }

  /** One flap sample of every breaker. */
  sampleBreakers(): void {
    const rt = this.runtime();
    const { high, low, damp, dampFactor } = rt.config.flapping;
    for (const [name, { value: b }] of rt.breakers) {
      const bm = this.metrics.breakerStats.get(name);
      if (!bm) continue;
      let fd = this.flaps.get(name);
      if (!fd) this.flaps.set(name, (fd = new FlapDetector()));
      const change = fd.sample({ state: b.state, transitions: bm.transitionCount }, high, low);
      b.dampFactor = damp && fd.flapping ? dampFactor : 1;
      if (change === null) continue;
      bm.flapping.set(fd.flapping ? 1 : 0);
      if (change === 'started') {
        const pattern = this.patternOf(name, b);
        this.metrics.events.emit('breaker_flapping_started', 'warning', { breaker: name }, `breaker flapping: ${fd.percent}% state change, ${pattern}`);
      } else {
        this.metrics.events.emit('breaker_flapping_stopped', 'info', { breaker: name }, `breaker no longer flapping: ${fd.percent}% state change`);
      }
    }
    for (const name of this.flaps.keys()) {
      if (rt.breakers.has(name)) continue;
      this.flaps.delete(name);
      this.metrics.breakerFlapping.remove({ breaker: name });
    }
  }

  private patternOf(name: string, b: OpsBreaker): FlapPattern {
    const bm = this.metrics.breakerStats.get(name);
    const hoa = b.settings.halfOpenAfter;
    const cap = (typeof hoa === 'number' ? hoa : hoa.max) * b.dampFactor;
    return classifyPattern(bm?.entered ?? [], bm?.failedProbesInARow ?? 0, b.openForMs >= cap);
  }

  flapping(): FlapReport[] {
    const rt = this.runtime();
    const out: FlapReport[] = [];
    for (const [name, fd] of this.flaps) {
      const kept = rt.breakers.get(name);
      if (!fd.flapping || !kept) continue;
      out.push({ breaker: name, percent: fd.percent, pattern: this.patternOf(name, kept.value), since: (fd.since as Date).toISOString() });
    }
    return out;
  }

  /** Recomputes each route's level; a change raises a route_health event. */
  evaluateHealth(): void {
    for (const r of this.runtime().routes) {
      const { level, ratio, requests } = routeLevel(r);
      const prev = this.levels.get(r.name) ?? 'ok';
      if (level === prev) continue;
      this.levels.set(r.name, level);
      const pct = `${round(ratio * 100)}% of ${requests} requests failed`;
      const sev: Severity = level === 'ok' ? 'info' : level;
      this.metrics.events.emit('route_health', sev, { route: r.name }, level === 'ok' ? `route healthy again (${pct})` : `route error ratio ${level}: ${pct}`);
    }
  }

  health(): { level: HealthLevel; routes: Array<{ route: string; level: HealthLevel; errorRatio: number; requests: number }>; flapping: FlapReport[] } {
    const routes = this.runtime().routes.map((r) => {
      const { level, ratio, requests } = routeLevel(r);
      return { route: r.name, level, errorRatio: round(ratio), requests };
    });
    const worst = routes.reduce((w, r) => Math.max(w, LEVELS.indexOf(r.level)), 0);
    return { level: LEVELS[worst] as HealthLevel, routes, flapping: this.flapping() };
  }

  /** The GET /stats document. */
  stats(): Record<string, unknown> {
    const rt = this.runtime();
    const flapping = new Map(this.flapping().map((f) => [f.breaker, f]));
    const now = Date.now();
    return {
      time: new Date(now).toISOString(),
      version: version(),
      node: process.version,
      uptimeSeconds: Math.round((now - this.startedAt) / 1000),
      config: { path: rt.loaded.path, hash: rt.loaded.hash, loadedAt: rt.loaded.loadedAt.toISOString(), lastReload: this.lastReload },
      draining: this.draining(),
      health: this.health().level,
      routes: rt.routes.map((r) => {
        const w = r.metrics.window;
        const s = w.summary(60);
        const { level } = routeLevel(r);
        const usage = r.budget.usage();
        const fallbacks: Record<string, number> = {};
        FALLBACK_ON.forEach((t, i) => (fallbacks[t] = round((s.fallbacks[i] as number) / s.seconds)));
        const b = r.breaker;
        const bm = b ? this.metrics.breakerStats.get(b.name) : undefined;
        const snap = b?.snapshot();
        return {
          name: r.name,
          health: level,
          windowSeconds: s.seconds,
          requests: s.requests,
          rps: round(s.requests / s.seconds),
          errorRatio: s.requests > 0 ? round(s.errors / s.requests) : 0,
          latencyMs: { p50: quantileMs(s.hist, DURATION_BUCKETS, 0.5), p99: quantileMs(s.hist, DURATION_BUCKETS, 0.99) },
          retriesPerSecond: round(s.retries / s.seconds),
          retryBudget: { enabled: r.budget.settings.enabled, used: usage.used, allowed: round(usage.allowed), usePercent: r.budget.settings.enabled && usage.allowed > 0 ? round((usage.used / usage.allowed) * 100) : 0, exhausted: s.exhausted },
          fallbacksPerSecond: fallbacks,
          inflight: r.metrics.inflight,
          concurrency: { max: r.config.concurrency.max, queue: r.config.concurrency.queue },
          breaker: snap
            ? {
                name: snap.name,
                state: snap.state,
                since: snap.since,
                secondsInState: Math.max(0, Math.round((now - Date.parse(snap.since)) / 1000)),
                lastTransition: bm?.last ? { from: bm.last.from, to: bm.last.to, at: bm.last.at.toISOString() } : null,
                retryAfterSeconds: snap.retryAfterSeconds,
                opens: snap.opens,
                flapping: flapping.get(snap.name) ?? null,
              }
            : null,
          sparkline: w.sparkline(),
          deadLetters: deadLetterStats(rt.journals?.get(r.name)),
        };
      }),
    };
  }
}

function routeLevel(r: OpsRoute): { level: HealthLevel; ratio: number; requests: number } {
  const t = r.config.health.errorRatio;
  const s = r.metrics.window.summary(Math.round(t.window / 1000));
  const ratio = s.requests > 0 ? s.errors / s.requests : 0;
  if (s.requests < t.minRequests) return { level: 'ok', ratio, requests: s.requests };
  return { level: ratio >= t.critical ? 'critical' : ratio >= t.warning ? 'warning' : 'ok', ratio, requests: s.requests };
}

export function parseSeverity(v: string | null): Severity | undefined {
  if (v === null || v === '') return 'info';
  return (SEVERITIES as readonly string[]).includes(v) ? (v as Severity) : undefined;
}

/** A route's dead-letter count for /stats and the status page; null when it does not record. */
function deadLetterStats(j: { stats(): { entries: number; pending: number; evicted: number } } | undefined): { entries: number; pending: number; evicted: number } | null {
  if (j === undefined) return null;
  const { entries, pending, evicted } = j.stats();
  return { entries, pending, evicted };
}
