// Timeouts. The route `timeout` is a deadline fixed when the request starts (Exchange);
// it bounds every attempt, backoff and Retry-After wait. Each attempt gets one timer for
// min(perTryTimeout, time left) — a single setTimeout, not an AbortController per call.
import type { TimeoutKind } from '../exchange/outcome.js';

/** How long the next attempt may take, and which limit that is; ms <= 0: already out of time. */
export function attemptBudget(remaining: number, perTryTimeout: number): { ms: number; kind: TimeoutKind } {
  if (perTryTimeout > 0 && perTryTimeout < remaining) return { ms: perTryTimeout, kind: 'per_try' };
  return { ms: remaining, kind: 'total' };
}
