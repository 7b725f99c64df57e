import { describe, expect, it } from 'vitest';
import { backoffDelay, cappedExponential, decorrelatedJitter, equalJitter, fullJitter, type DecorrelatedState } from '../../src/policies/backoff.js';

/** A random source that returns the given values in turn (cycling). */
const seq = (...vs: number[]) => {
  let i = 0;
  return () => vs[i++ % vs.length] as number;
};
const LOW = () => 0;
const HIGH = () => 1 - Number.EPSILON;

describe('cappedExponential', () => {
  it('doubles from base and stops at max', () => {
    expect([1, 2, 3, 4, 5, 6].map((n) => cappedExponential(n, 25, 250))).toEqual([25, 50, 100, 200, 250, 250]);
    expect(cappedExponential(30, 25, 250)).toBe(250);
  });
});

describe('full jitter', () => {
  it('is in [0, min(max, base*2^(n-1)))', () => {
    for (let n = 1; n <= 8; n++) {
      const cap = Math.min(250, 25 * 2 ** (n - 1));
      expect(fullJitter(n, 25, 250, LOW)).toBe(0);
      const hi = fullJitter(n, 25, 250, HIGH);
      expect(hi).toBeLessThan(cap);
      expect(hi).toBeGreaterThan(cap * 0.999);
      expect(fullJitter(n, 25, 250, () => 0.5)).toBeCloseTo(cap / 2);
    }
  });

  it('stays in bounds for Math.random', () => {
    for (let i = 0; i < 1000; i++) {
      const d = fullJitter(4, 25, 150);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThan(150);
    }
  });
});

describe('equal jitter', () => {
  it('is half fixed, half random: [cap/2, cap)', () => {
    for (let n = 1; n <= 8; n++) {
      const cap = Math.min(250, 25 * 2 ** (n - 1));
      expect(equalJitter(n, 25, 250, LOW)).toBe(cap / 2);
      const hi = equalJitter(n, 25, 250, HIGH);
      expect(hi).toBeLessThan(cap);
      expect(hi).toBeGreaterThan(cap * 0.999);
    }
  });
});

describe('no jitter', () => {
  it('is exactly the capped exponential, whatever the random source says', () => {
    const s = { base: 100, max: 1000, jitter: 'none' as const };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, s, undefined, HIGH)[0])).toEqual([100, 200, 400, 800, 1000]);
  });
});

describe('decorrelated jitter (cockatiel)', () => {
  it('never exceeds max, is never negative, and carries its state', () => {
    for (let run = 0; run < 200; run++) {
      let state: DecorrelatedState = undefined;
      for (let n = 1; n <= 10; n++) {
        const [d, next] = decorrelatedJitter(state, 25, 250);
        expect(d).toBeGreaterThanOrEqual(0);
        expect(d).toBeLessThanOrEqual(250);
        expect(next).not.toBe(state);
        state = next;
      }
    }
  });

  it('grows on average with the retry number', () => {
    const mean = (n: number) => {
      let sum = 0;
      for (let run = 0; run < 300; run++) {
        let state: DecorrelatedState = undefined;
        let d = 0;
        for (let i = 1; i <= n; i++) [d, state] = decorrelatedJitter(state, 10, 100_000);
        sum += d;
      }
      return sum / 300;
    };
    expect(mean(5)).toBeGreaterThan(mean(1) * 2);
  });
});

describe('backoffDelay', () => {
  it('dispatches on the jitter setting with the injected random source', () => {
    const base = { base: 40, max: 1000 };
    expect(backoffDelay(3, { ...base, jitter: 'full' }, undefined, seq(0.25))[0]).toBe(40);
    expect(backoffDelay(3, { ...base, jitter: 'equal' }, undefined, seq(0.5))[0]).toBe(120);
    expect(backoffDelay(3, { ...base, jitter: 'none' }, undefined, seq(0.5))[0]).toBe(160);
    const [d, state] = backoffDelay(1, { ...base, jitter: 'decorrelated' }, undefined);
    expect(d).toBeLessThanOrEqual(1000);
    expect(state).toBeDefined();
  });

  it('leaves the state alone for the stateless jitters', () => {
    const st = { some: 'state' };
    expect(backoffDelay(1, { base: 1, max: 2, jitter: 'full' }, st)[1]).toBe(st);
    expect(backoffDelay(1, { base: 1, max: 2, jitter: 'equal' }, st)[1]).toBe(st);
    expect(backoffDelay(1, { base: 1, max: 2, jitter: 'none' }, st)[1]).toBe(st);
  });
});
