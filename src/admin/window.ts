// Rolling windows behind GET /stats and the status page: per route, a ring of per-second
// buckets over the last five minutes. Recording is an index computation and a few integer
// increments on typed arrays allocated once; everything else (rates, ratios, quantiles,
// sparklines) is computed when /stats is read.

/** Seconds kept: five minutes, the sparkline span and the longest health window. */
export const WINDOW_SECONDS = 300;
/** Seconds per sparkline point (30 points over five minutes). */
export const SPARK_STEP = 10;

export class RouteWindow {
  readonly requests = new Uint32Array(WINDOW_SECONDS);
  readonly errors = new Uint32Array(WINDOW_SECONDS);
  readonly retries = new Uint32Array(WINDOW_SECONDS);
  readonly budgetExhausted = new Uint32Array(WINDOW_SECONDS);
  /** [second * triggers + trigger] */
  readonly fallbacks: Uint32Array;
  /** [second * latencyBuckets + bucket]: non-cumulative counts per latency bound, then +Inf. */
  readonly latency: Uint32Array;
  private sec: number;
  private readonly created: number;

  constructor(
    /** Upper bounds of the latency buckets, in seconds (the duration histogram's). */
    readonly bounds: readonly number[],
    readonly triggers: number,
    private readonly now: () => number = Date.now,
  ) {
    this.fallbacks = new Uint32Array(WINDOW_SECONDS * triggers);
    this.latency = new Uint32Array(WINDOW_SECONDS * (bounds.length + 1));
    this.sec = Math.floor(now() / 1000);
    this.created = this.sec;
  }

  /** The ring slot of the current second, clearing the slots of seconds that passed. */
  private slot(): number {
    const s = Math.floor(this.now() / 1000);
    if (s !== this.sec) this.advance(s);
    return s % WINDOW_SECONDS;
  }

  private advance(s: number): void {
    // A clock that stepped back lands in a slot already counted; better than losing counts.
    const steps = Math.min(WINDOW_SECONDS, Math.max(0, s - this.sec));
    const nb = this.bounds.length + 1;
    for (let i = 1; i <= steps; i++) {
      const idx = (this.sec + i) % WINDOW_SECONDS;
      this.requests[idx] = 0;
      this.errors[idx] = 0;
      this.retries[idx] = 0;
      this.budgetExhausted[idx] = 0;
      this.fallbacks.fill(0, idx * this.triggers, (idx + 1) * this.triggers);
      this.latency.fill(0, idx * nb, (idx + 1) * nb);
    }
    this.sec = s;
  }

  /** A response: an error when the status is 5xx (499, the client leaving, is not). */
  request(code: number): void {
    const i = this.slot();
    this.requests[i]! += 1;
    if (code >= 500) this.errors[i]! += 1;
  }

  latencyBucket(bucket: number): void {
    this.latency[this.slot() * (this.bounds.length + 1) + bucket]! += 1;
  }

  retry(): void {
    this.retries[this.slot()]! += 1;
  }

  exhausted(): void {
    this.budgetExhausted[this.slot()]! += 1;
  }

  fallback(trigger: number): void {
    this.fallbacks[this.slot() * this.triggers + trigger]! += 1;
  }

  /** Sums over the last `seconds` seconds, the current one included. */
  summary(seconds: number): WindowSummary {
    this.slot();
    const n = Math.min(seconds, WINDOW_SECONDS);
    const nb = this.bounds.length + 1;
    const hist = new Array<number>(nb).fill(0);
    const fallbacks = new Array<number>(this.triggers).fill(0);
    let requests = 0;
    let errors = 0;
    let retries = 0;
    let exhausted = 0;
    for (let k = 0; k < n; k++) {
      const idx = (((this.sec - k) % WINDOW_SECONDS) + WINDOW_SECONDS) % WINDOW_SECONDS;
      requests += this.requests[idx] as number;
      errors += this.errors[idx] as number;
      retries += this.retries[idx] as number;
      exhausted += this.budgetExhausted[idx] as number;
      for (let t = 0; t < this.triggers; t++) fallbacks[t]! += this.fallbacks[idx * this.triggers + t] as number;
      for (let b = 0; b < nb; b++) hist[b]! += this.latency[idx * nb + b] as number;
    }
    // A window younger than `seconds` is divided by its age, not by the full span.
    const span = Math.max(1, Math.min(n, this.sec - this.created + 1));
    return { seconds: span, requests, errors, retries, exhausted, fallbacks, hist };
  }

  /** Request rate and error ratio per SPARK_STEP seconds over five minutes, oldest first. */
  sparkline(): { rps: number[]; errorRatio: number[] } {
    this.slot();
    const points = WINDOW_SECONDS / SPARK_STEP;
    const rps: number[] = [];
    const errorRatio: number[] = [];
    for (let p = points - 1; p >= 0; p--) {
      let req = 0;
      let err = 0;
      for (let k = 0; k < SPARK_STEP; k++) {
        const idx = (((this.sec - p * SPARK_STEP - k) % WINDOW_SECONDS) + WINDOW_SECONDS) % WINDOW_SECONDS;
        req += this.requests[idx] as number;
        err += this.errors[idx] as number;
      }
      rps.push(round(req / SPARK_STEP));
      errorRatio.push(req > 0 ? round(err / req) : 0);
    }
    return { rps, errorRatio };
  }
}

export interface WindowSummary {
  /** The seconds the sums cover. */
  seconds: number;
  requests: number;
  errors: number;
  retries: number;
  exhausted: number;
  fallbacks: number[];
  hist: number[];
}

/**
 * The q-quantile of a bucketed latency histogram, in milliseconds, interpolated linearly
 * inside the bucket as Prometheus' histogram_quantile does; null with no observations.
 * Observations above the last bound report that bound.
 */
export function quantileMs(hist: readonly number[], bounds: readonly number[], q: number): number | null {
  let total = 0;
  for (const c of hist) total += c;
  if (total === 0) return null;
  const rank = q * total;
  let acc = 0;
  for (let b = 0; b < hist.length; b++) {
    const c = hist[b] as number;
    if (c > 0 && acc + c >= rank) {
      if (b >= bounds.length) return (bounds[bounds.length - 1] as number) * 1000;
      const lo = b === 0 ? 0 : (bounds[b - 1] as number);
      const hi = bounds[b] as number;
      return round((lo + (hi - lo) * ((rank - acc) / c)) * 1000);
    }
    acc += c;
  }
  return (bounds[bounds.length - 1] as number) * 1000;
}

export function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}
