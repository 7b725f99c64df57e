import { describe, expect, it } from 'vitest';
import { RetryBudget, type BudgetSettings } from '../../src/policies/budget.js';

function clock(start = 1_000_000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const settings = (s: Partial<BudgetSettings> = {}): BudgetSettings => ({ enabled: true, ratio: 0.2, minPerSecond: 1, window: 10_000, ...s });

function take(b: RetryBudget, n: number): number {
  let got = 0;
  for (let i = 0; i < n; i++) if (b.tryAcquire()) got++;
  return got;
}

describe('RetryBudget', () => {
  it('allows the floor minPerSecond * window seconds with no requests', () => {
    const c = clock();
    const b = new RetryBudget(settings({ minPerSecond: 2 }), c.now);
    expect(b.remaining()).toBe(20);
    expect(take(b, 50)).toBe(20);
    expect(b.remaining()).toBe(0);
    expect(b.tryAcquire()).toBe(false);
  });

  it('allows ratio * requests once that exceeds the floor', () => {
    const c = clock();
    const b = new RetryBudget(settings({ minPerSecond: 1, ratio: 0.2 }), c.now);
    for (let i = 0; i < 200; i++) b.recordRequest();
    // max(1 * 10, 0.2 * 200) = 40
    expect(b.remaining()).toBe(40);
    expect(take(b, 100)).toBe(40);
  });

  it('is max(floor, ratio*requests), not their sum', () => {
    const c = clock();
    const b = new RetryBudget(settings({ minPerSecond: 1, ratio: 0.5 }), c.now);
    for (let i = 0; i < 10; i++) b.recordRequest();
    // max(10, 5) = 10
    expect(take(b, 100)).toBe(10);
  });

  it('frees the budget as the window slides past old retries', () => {
    const c = clock(0);
    const b = new RetryBudget(settings({ minPerSecond: 1 }), c.now);
    expect(take(b, 10)).toBe(10);
    c.advance(5_000);
    expect(take(b, 10)).toBe(0);
    c.advance(4_999);
    expect(b.tryAcquire()).toBe(false);
    c.advance(1);
    // The bucket holding the first 10 retries has left the window.
    expect(take(b, 20)).toBe(10);
  });

  it('forgets requests that left the window', () => {
    const c = clock(0);
    const b = new RetryBudget(settings({ minPerSecond: 0, ratio: 0.5 }), c.now);
    for (let i = 0; i < 10; i++) b.recordRequest();
    expect(b.remaining()).toBe(5);
    c.advance(10_000);
    expect(b.remaining()).toBe(0);
    c.advance(60_000);
    for (let i = 0; i < 4; i++) b.recordRequest();
    expect(take(b, 10)).toBe(2);
  });

  it('with ratio 0 and floor 0 allows no retries at all', () => {
    const b = new RetryBudget(settings({ minPerSecond: 0, ratio: 0 }), clock().now);
    for (let i = 0; i < 100; i++) b.recordRequest();
    expect(b.tryAcquire()).toBe(false);
  });

  it('always allows when disabled', () => {
    const b = new RetryBudget(settings({ enabled: false, minPerSecond: 0, ratio: 0 }), clock().now);
    expect(take(b, 1000)).toBe(1000);
  });
});
