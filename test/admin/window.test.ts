import { describe, expect, it } from 'vitest';
import { RouteWindow, WINDOW_SECONDS, quantileMs } from '../../src/admin/window.js';

const BOUNDS = [0.01, 0.1, 1];

function clocked(startMs = 1_000_000_000) {
  let now = startMs;
  const w = new RouteWindow(BOUNDS, 2, () => now);
  return { w, tick: (s: number) => (now += s * 1000) };
}

describe('RouteWindow', () => {
  it('sums requests, errors, retries and fallbacks over the last seconds', () => {
    const { w, tick } = clocked();
    for (let i = 0; i < 10; i++) w.request(200);
    w.request(503);
    w.request(499);
    w.retry();
    w.fallback(1);
    tick(1);
    w.request(500);
    w.exhausted();
    const s = w.summary(60);
    expect(s.requests).toBe(13);
    expect(s.errors).toBe(2);
    expect(s.retries).toBe(1);
    expect(s.exhausted).toBe(1);
    expect(s.fallbacks).toEqual([0, 1]);
    // Two seconds old: rates divide by 2, not 60.
    expect(s.seconds).toBe(2);
    expect(w.summary(1).requests).toBe(1);
  });

  it('forgets seconds older than the window, and everything after a long gap', () => {
    const { w, tick } = clocked();
    w.request(200);
    tick(59);
    w.request(200);
    expect(w.summary(60).requests).toBe(2);
    tick(1);
    expect(w.summary(60).requests).toBe(1);
    tick(WINDOW_SECONDS * 3);
    expect(w.summary(WINDOW_SECONDS).requests).toBe(0);
    w.request(200);
    expect(w.summary(WINDOW_SECONDS).requests).toBe(1);
  });

  it('keeps a latency histogram per second and a 30-point sparkline', () => {
    const { w, tick } = clocked(1_000_000_000);
    w.latencyBucket(0);
    w.latencyBucket(1);
    w.latencyBucket(3);
    expect(w.summary(60).hist).toEqual([1, 1, 0, 1]);
    for (let i = 0; i < 20; i++) w.request(i < 5 ? 500 : 200);
    tick(10);
    const sp = w.sparkline();
    expect(sp.rps).toHaveLength(30);
    expect(sp.rps[28]).toBe(2);
    expect(sp.errorRatio[28]).toBe(0.25);
    expect(sp.rps[29]).toBe(0);
  });
});

describe('quantileMs', () => {
  it('interpolates inside the bucket like histogram_quantile', () => {
    // 10 in (0, 10ms], 10 in (10ms, 100ms]: the median is the top of the first bucket;
    // p75 is half-way through the second: 10 + 90 * 0.5 = 55ms.
    expect(quantileMs([10, 10, 0, 0], BOUNDS, 0.5)).toBe(10);
    expect(quantileMs([10, 10, 0, 0], BOUNDS, 0.75)).toBe(55);
    expect(quantileMs([0, 0, 0, 4], BOUNDS, 0.99)).toBe(1000);
    expect(quantileMs([0, 0, 0, 0], BOUNDS, 0.5)).toBeNull();
  });
});
