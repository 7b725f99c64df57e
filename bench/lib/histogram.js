// A small log-linear latency histogram in microseconds (about 0.1% precision),
// because autocannon's own latency histogram is integer milliseconds, which is
// too coarse for "0.3 ms added latency" targets.
const SUB_BITS = 10; // 1024 sub-buckets per power of two
const SUB = 1 << SUB_BITS;

export class Histogram {
  constructor() {
    this.counts = new Float64Array(SUB * 40);
    this.n = 0;
    this.sum = 0;
    this.max = 0;
    this.min = Infinity;
  }

  static indexOf(us) {
    const v = Math.max(0, Math.floor(us));
    if (v < SUB) return v;
    const e = Math.floor(Math.log2(v)) - SUB_BITS + 1; // v >> e is in [SUB/2, SUB)
    return e * (SUB / 2) + (v >>> e);
  }

  /** Lower bound (µs) of bucket index i; inverse of indexOf. */
  static valueOf(i) {
    if (i < SUB) return i;
    const e = Math.floor((i - SUB / 2) / (SUB / 2));
    const m = i - e * (SUB / 2);
    return m * 2 ** e;
  }

  record(us) {
    let i = Histogram.indexOf(us);
    if (i >= this.counts.length) i = this.counts.length - 1;
    this.counts[i] += 1;
    this.n += 1;
    this.sum += us;
    if (us > this.max) this.max = us;
    if (us < this.min) this.min = us;
  }

  /** Value (µs) at percentile p in [0, 100]. */
  percentile(p) {
    if (this.n === 0) return null;
    const rank = Math.max(1, Math.ceil((p / 100) * this.n));
    let seen = 0;
    for (let i = 0; i < this.counts.length; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(Histogram.valueOf(i), this.max);
    }
    return this.max;
  }

  summary() {
    return {
      count: this.n,
      meanUs: this.n ? this.sum / this.n : null,
      minUs: this.n ? this.min : null,
      p50Us: this.percentile(50),
      p90Us: this.percentile(90),
      p99Us: this.percentile(99),
      p999Us: this.percentile(99.9),
      maxUs: this.n ? this.max : null,
    };
  }
}
