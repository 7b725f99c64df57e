import { describe, expect, it } from 'vitest';
import { FlapDetector, changeWeight, classifyPattern, nextFlapping, percentStateChange, period, type FlapSample } from '../../src/policies/flapping.js';

/** A history from a string: one letter per sample (c closed, o open, h half-open). */
const hist = (s: string, transitions?: number[]): FlapSample[] =>
  [...s].map((ch, i) => ({ state: ({ c: 'closed', o: 'open', h: 'half-open' } as Record<string, string>)[ch] as string, transitions: transitions?.[i] ?? 0 }));

describe('percent state change (Nagios weighting)', () => {
  it('weights the 20 change slots from 0.75 to 1.25', () => {
    expect(changeWeight(0)).toBe(0.75);
    expect(changeWeight(19)).toBe(1.25);
    expect(changeWeight(9.5)).toBeCloseTo(1, 12);
  });

  it('is 0 for a steady breaker and 100 when every sample differs', () => {
    expect(percentStateChange(hist('c'.repeat(21)))).toBe(0);
    // Weights sum to 20 * mean(0.75, 1.25) = 20; 20 / 20 = 100%.
    expect(percentStateChange(hist('co'.repeat(10) + 'c'))).toBe(100);
  });

  it('counts one change in the newest slot as 1.25/20 and in the oldest as 0.75/20', () => {
    expect(percentStateChange(hist('c'.repeat(20) + 'o'))).toBe(6.25);
    expect(percentStateChange(hist('o' + 'c'.repeat(20)))).toBe(3.75);
  });

  it('matches a hand-computed half-flapping history', () => {
    // Changes in slots 10..19: 10 * 0.75 + (0.5 / 19) * (10 + ... + 19) = 7.5 + 72.5 / 19 = 11.3158; / 20 = 56.58%.
    expect(percentStateChange(hist('c'.repeat(11) + 'oc'.repeat(5)))).toBe(56.58);
  });

  it('counts transitions between samples as a change even when the sampled state is the same', () => {
    const t = Array.from({ length: 21 }, (_, i) => (i === 20 ? 2 : 0));
    expect(percentStateChange(hist('c'.repeat(21), t))).toBe(6.25);
  });

  it('divides a short history by the full 20 slots, its changes in the newest slots', () => {
    // Slots 18 and 19: 0.75 + 0.5 * 18/19 = 1.22368 and 1.25; 2.47368 / 20 = 12.37%.
    expect(percentStateChange(hist('coc'))).toBe(12.37);
    expect(percentStateChange(hist('c'))).toBe(0);
  });

  it('uses only the last 21 samples', () => {
    expect(percentStateChange(hist('oc'.repeat(20) + 'c'.repeat(21)))).toBe(0);
  });
});

describe('hysteresis', () => {
  it('starts at >= high, stops at <= low, holds in between', () => {
    expect(nextFlapping(false, 30, 30, 15)).toBe(true);
    expect(nextFlapping(false, 29.9, 30, 15)).toBe(false);
    expect(nextFlapping(true, 20, 30, 15)).toBe(true);
    expect(nextFlapping(true, 15, 30, 15)).toBe(false);
    expect(nextFlapping(false, 20, 30, 15)).toBe(false);
  });

  it('FlapDetector flags and clears with the history', () => {
    const fd = new FlapDetector();
    const changes: Array<string | null> = [];
    // 21 alternating samples: percent climbs past 30 part way through.
    for (let i = 0; i < 21; i++) changes.push(fd.sample({ state: i % 2 ? 'open' : 'closed', transitions: i }, 30, 15));
    expect(fd.flapping).toBe(true);
    expect(fd.percent).toBe(100);
    expect(changes.filter((c) => c === 'started')).toHaveLength(1);
    expect(fd.since).toBeInstanceOf(Date);
    // Then steady: the changes age out of the history, and it stops once at <= 15.
    let stoppedAt = -1;
    for (let i = 0; i < 21; i++) if (fd.sample({ state: 'closed', transitions: 20 }, 30, 15) === 'stopped') stoppedAt = i;
    expect(fd.flapping).toBe(false);
    expect(fd.since).toBeNull();
    // After k steady samples the history keeps 20 - k changes in slots 0..19-k:
    // sum_{i<20-k} (0.75 + i/38) / 20 <= 0.15 first holds for k = 17 (3 changes: 2.33/20 = 11.6%; k = 16 gives 15.8%).
    expect(stoppedAt).toBe(16);
  });
});

describe('pattern', () => {
  it('finds the period of a repeating sequence', () => {
    expect(period(['open', 'closed', 'open', 'closed'])).toBe(2);
    expect(period(['open', 'half-open', 'closed', 'open', 'half-open', 'closed'])).toBe(3);
    expect(period(['open', 'closed', 'closed'])).toBe(0);
  });

  it('open → half-open → closed loops and open/closed turns are alternating', () => {
    expect(classifyPattern(['open', 'half-open', 'closed', 'open', 'half-open', 'closed', 'open', 'half-open', 'closed'], 0, false)).toBe('alternating');
    expect(classifyPattern(['open', 'closed', 'open', 'closed'], 0, false)).toBe('alternating');
  });

  it('a longer repeating sequence is a cycle', () => {
    const unit = ['open', 'half-open', 'open', 'half-open', 'closed'];
    expect(classifyPattern([...unit, ...unit, ...unit], 0, false)).toBe('cycle');
  });

  it('failed probes in a row at the capped open time are a runaway', () => {
    const seq = ['open', 'half-open', 'open', 'half-open', 'open', 'half-open', 'open'];
    expect(classifyPattern(seq, 3, true)).toBe('runaway');
    expect(classifyPattern(seq, 3, false)).toBe('alternating');
    expect(classifyPattern(seq, 2, true)).not.toBe('runaway');
  });

  it('no repetition is irregular', () => {
    expect(classifyPattern(['open', 'half-open', 'closed', 'open', 'closed'], 0, false)).toBe('irregular');
  });
});
