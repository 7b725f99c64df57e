// Retry delays. Pure functions of (attempt, settings, random source) so the bounds are
// unit-testable; `decorrelated` delegates to cockatiel's generator and carries its state.
import { decorrelatedJitterGenerator } from 'cockatiel';
import type { Jitter } from '../config/schema.js';

export interface BackoffSettings {
  base: number;
  max: number;
  jitter: Jitter;
}

/** min(max, base * 2^(n-1)) for retry n >= 1. */
export function cappedExponential(n: number, base: number, max: number): number {
  return Math.min(max, base * 2 ** (n - 1));
}

/** Random in [0, capped). */
export function fullJitter(n: number, base: number, max: number, rand: () => number = Math.random): number {
  return rand() * cappedExponential(n, base, max);
}

/** Half fixed, half random: [capped/2, capped). */
export function equalJitter(n: number, base: number, max: number, rand: () => number = Math.random): number {
  const c = cappedExponential(n, base, max);
  return c / 2 + (rand() * c) / 2;
}

/** Opaque state of cockatiel's decorrelated generator between retries of one request. */
export type DecorrelatedState = unknown;

/** cockatiel's decorrelated jitter ("Exponential backoff and jitter", AWS), capped at max. */
export function decorrelatedJitter(state: DecorrelatedState, base: number, max: number): [number, DecorrelatedState] {
  const [delay, next] = decorrelatedJitterGenerator(state as never, { initialDelay: base, maxDelay: max, exponent: 2 } as never) as [number, unknown];
  return [Math.min(max, delay), next];
}

/** The delay before retry n; `state` is only used (and returned) by decorrelated jitter. */
export function backoffDelay(n: number, s: BackoffSettings, state: DecorrelatedState, rand: () => number = Math.random): [number, DecorrelatedState] {
  switch (s.jitter) {
    case 'full':
      return [fullJitter(n, s.base, s.max, rand), state];
    case 'equal':
      return [equalJitter(n, s.base, s.max, rand), state];
    case 'none':
      return [cappedExponential(n, s.base, s.max), state];
    case 'decorrelated':
      return decorrelatedJitter(state, s.base, s.max);
  }
}
