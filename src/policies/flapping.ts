// Breaker flap detection, adapted from Nagios: each breaker is sampled every
// flapping.interval into a history of the last 21 samples. Each of the 20 changes between
// neighbouring samples is weighted from 0.75 (oldest) to 1.25 (newest); the weighted sum
// over 20 is the percent state change. A breaker starts flapping at or above `high` and
// stops at or below `low`; in between its flag holds (hysteresis).
//
// A sample counts as a change when the state differs from the previous sample, or when the
// breaker made a transition in between (it opened and closed again between two samples:
// sampling alone would miss exactly the fast flaps that matter).

export const HISTORY = 21;
const LOW_WEIGHT = 0.75;
const HIGH_WEIGHT = 1.25;

export type FlapPattern = 'alternating' | 'cycle' | 'runaway' | 'irregular';

export interface FlapSample {
  state: string;
  /** The breaker's transition count when sampled. */
  transitions: number;
}

/** Weight of change slot `i` of the 20 (0 oldest). */
export function changeWeight(i: number): number {
  return LOW_WEIGHT + ((HIGH_WEIGHT - LOW_WEIGHT) * i) / (HISTORY - 2);
}

/**
 * Percent state change of a history, oldest first, at most HISTORY samples. A short history
 * fills the newest slots and is still divided by the 20 slots of a full one, so a breaker
 * is not called flapping on its first few samples.
 */
export function percentStateChange(samples: readonly FlapSample[]): number {
  const h = samples.length > HISTORY ? samples.slice(-HISTORY) : samples;
  const offset = HISTORY - h.length;
  let sum = 0;
  for (let k = 1; k < h.length; k++) {
    const a = h[k - 1] as FlapSample;
    const b = h[k] as FlapSample;
    if (a.state !== b.state || a.transitions !== b.transitions) sum += changeWeight(offset + k - 1);
  }
  return Math.round((sum / (HISTORY - 1)) * 100 * 100) / 100;
}

/** The next flag: on at >= high, off at <= low, unchanged in between. */
export function nextFlapping(flapping: boolean, percent: number, high: number, low: number): boolean {
  if (!flapping && percent >= high) return true;
  if (flapping && percent <= low) return false;
  return flapping;
}

/** Consecutive failed probes (half-open then open again) that make a runaway. */
export const RUNAWAY_PROBES = 3;

/**
 * The pattern of a flapping breaker, from its recent states entered (oldest first):
 * - runaway: RUNAWAY_PROBES or more failed probes in a row while the open time is at its
 *   cap (the upstream never recovers; the breaker just keeps probing);
 * - alternating: two states in turn (open and closed, or open and half-open), or the
 *   usual open → half-open → closed loop;
 * - cycle: another sequence that repeats with a period longer than two;
 * - irregular: no repetition found.
 */
export function classifyPattern(entered: readonly string[], failedProbesInARow: number, openTimeAtCap: boolean): FlapPattern {
  if (failedProbesInARow >= RUNAWAY_PROBES && openTimeAtCap) return 'runaway';
  const seq = entered.slice(-20);
  const p = period(seq);
  if (p === 0) return 'irregular';
  const unit = seq.slice(seq.length - p);
  const set = new Set(unit);
  const openClosed = set.has('closed') && set.has('open') && unit.filter((s) => s === 'closed').length === 1 && unit.filter((s) => s === 'open').length === 1;
  // Two states in turn (open/closed, or open/half-open probes not yet at the cap).
  if (p === 2) return 'alternating';
  if (p === 3 && openClosed && set.has('half-open')) return 'alternating';
  return 'cycle';
}

/** Smallest period p (2..len/2) such that the sequence repeats over at least two periods. */
export function period(seq: readonly string[]): number {
  for (let p = 2; p * 2 <= seq.length; p++) {
    let ok = true;
    for (let i = p; i < seq.length && ok; i++) if (seq[i] !== seq[i - p]) ok = false;
    if (ok) return p;
  }
  return 0;
}

/** One breaker's history and flag. */
export class FlapDetector {
  readonly samples: FlapSample[] = [];
  flapping = false;
  percent = 0;
  since: Date | null = null;

  /** Adds a sample; returns 'started' or 'stopped' when the flag changes. */
  sample(s: FlapSample, high: number, low: number, at = new Date()): 'started' | 'stopped' | null {
    this.samples.push(s);
    if (this.samples.length > HISTORY) this.samples.shift();
    this.percent = percentStateChange(this.samples);
    const next = nextFlapping(this.flapping, this.percent, high, low);
    if (next === this.flapping) return null;
    this.flapping = next;
    this.since = next ? at : null;
    return next ? 'started' : 'stopped';
  }
}
