// Timeouts. The route `timeout` is a deadline fixed when the request starts (Exchange);
// it bounds every attempt, backoff and Retry-After wait. Each attempt gets one timer for
// min(perTryTimeout, time left) — a single setTimeout, not an AbortController per call.
import type { TimeoutKind } from '../exchange/outcome.js';

/**
 * How long the next attempt may take, and which limit that is; ms <= 0: already out of
 * time. A half-open probe also gets at most `probeTimeout` (probeLimited): a probe that
 * never ended would hold the breaker half-open, refusing everything, forever.
 */
export function attemptBudget(remaining: number, perTryTimeout: number, probeTimeout = Infinity): { ms: number; kind: TimeoutKind; probeLimited: boolean } {
  if (probeTimeout < remaining && (perTryTimeout <= 0 || probeTimeout < perTryTimeout)) return { ms: probeTimeout, kind: 'per_try', probeLimited: true };
  if (perTryTimeout > 0 && perTryTimeout < remaining) return { ms: perTryTimeout, kind: 'per_try', probeLimited: false };
  return { ms: remaining, kind: 'total', probeLimited: false };
}
