// Retry budget (Linkerd/Finagle style): over a sliding window, retries may not exceed
// max(minPerSecond * windowSeconds, ratio * requests). It keeps a failing upstream from
// being hit with (1 + attempts) times its normal load.

const BUCKETS = 10;

export interface BudgetSettings {
  enabled: boolean;
  ratio: number;
  minPerSecond: number;
  window: number;
}

export class RetryBudget {
  private readonly requests = new Float64Array(BUCKETS);
  private readonly retries = new Float64Array(BUCKETS);
  private readonly bucketMs: number;
  private readonly floor: number;
  private epoch = 0;
  private totalRequests = 0;
  private totalRetries = 0;

  constructor(
    readonly settings: BudgetSettings,
    private readonly now: () => number = Date.now,
  ) {
    this.bucketMs = settings.window / BUCKETS;
    this.floor = settings.minPerSecond * (settings.window / 1000);
  }

  /** Counts a request (its first attempt). */
  recordRequest(): void {
    if (!this.settings.enabled) return;
    this.rotate();
    this.requests[this.epoch % BUCKETS]! += 1;
    this.totalRequests += 1;
  }

  /** Takes one retry from the budget; false when it is spent. */
  tryAcquire(): boolean {
    if (!this.settings.enabled) return true;
    this.rotate();
    if (this.totalRetries + 1 > Math.max(this.floor, this.settings.ratio * this.totalRequests)) return false;
    this.retries[this.epoch % BUCKETS]! += 1;
    this.totalRetries += 1;
    return true;
  }

  /** Retries still allowed in the current window (for tests and /health). */
  remaining(): number {
    this.rotate();
    return Math.max(0, Math.floor(Math.max(this.floor, this.settings.ratio * this.totalRequests) - this.totalRetries));
  }

  /** Retries taken and allowed in the current window (for /stats). */
  usage(): { used: number; allowed: number } {
    this.rotate();
    return { used: this.totalRetries, allowed: Math.max(this.floor, this.settings.ratio * this.totalRequests) };
  }

  private rotate(): void {
    const e = Math.floor(this.now() / this.bucketMs);
    if (e === this.epoch) return;
    const steps = Math.min(BUCKETS, e - this.epoch);
    for (let i = 1; i <= steps; i++) {
      const idx = (this.epoch + i) % BUCKETS;
      this.totalRequests -= this.requests[idx]!;
      this.totalRetries -= this.retries[idx]!;
      this.requests[idx] = 0;
      this.retries[idx] = 0;
    }
    if (steps === BUCKETS) {
      this.totalRequests = 0;
      this.totalRetries = 0;
    }
    this.epoch = e;
  }
}
