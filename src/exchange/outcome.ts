// How one attempt ended, in the closed vocabulary that retry `on`, breaker `failOn`,
// fallback triggers and metric labels are all written in.
import { ControlFlowError } from '../errors.js';

/** Why an attempt failed before response headers. */
export type FailureKind = 'connect-failure' | 'refused-stream' | 'reset' | 'timeout' | 'client-abort';

/** Which timer fired: the per-try timeout or the route deadline. */
export type TimeoutKind = 'per_try' | 'total';

/** Label values of outrigger_upstream_attempts_total{outcome}. */
export const ATTEMPT_OUTCOMES = ['success', 'http_4xx', 'http_5xx', 'timeout', 'connect_failure', 'reset'] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** An attempt that failed before response headers. Thrown inside the policy stack only. */
export class AttemptError extends ControlFlowError {
  constructor(
    readonly kind: FailureKind,
    override readonly cause?: unknown,
    readonly timeoutKind?: TimeoutKind,
    /** A half-open probe ran out of breaker.probeTimeout: a breaker failure whatever failOn lists. */
    readonly probeTimedOut = false,
  ) {
    super(kind);
    this.name = 'AttemptError';
  }

  /** The upstream answered, but not validly (an invalid 101): never retried. */
  get answered(): boolean {
    return false;
  }
}

/**
 * The upstream answered an upgrade with something that is not a valid switch: a 101 with a
 * missing or wrong Upgrade, a bad Sec-WebSocket-Accept, a subprotocol the client did not
 * offer, or another 1xx. A failure like a reset (breaker failOn `reset`), but the upstream
 * did answer, so it is not retried. The client gets 502 and never a 101.
 */
export class InvalidUpgradeError extends AttemptError {
  constructor(readonly detail: string) {
    super('reset');
    this.name = 'InvalidUpgradeError';
  }

  override get answered(): boolean {
    return true;
  }
}

const CONNECT_CODES = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EHOSTDOWN',
  'ENETDOWN',
]);

/**
 * Maps an undici error to a failure kind. `connected` says whether undici handed the
 * request to a socket (onConnect), `sent` whether the whole request was written.
 */
export function classifyError(err: unknown, connected: boolean, sent: boolean): FailureKind {
  const code = (err as { code?: string } | null)?.code;
  if (!connected || (code !== undefined && CONNECT_CODES.has(code))) return 'connect-failure';
  if (!sent) return 'refused-stream';
  return 'reset';
}

export function attemptOutcomeOfStatus(status: number): AttemptOutcome {
  if (status >= 500) return 'http_5xx';
  if (status >= 400) return 'http_4xx';
  return 'success';
}

export function attemptOutcomeOfFailure(kind: FailureKind): AttemptOutcome | null {
  switch (kind) {
    case 'connect-failure':
      return 'connect_failure';
    case 'refused-stream':
    case 'reset':
      return 'reset';
    case 'timeout':
      return 'timeout';
    case 'client-abort':
      return null;
  }
}

/** Label values of outrigger_retries_total{reason}. */
export const RETRY_REASONS = ['connect_failure', 'refused_stream', 'reset', 'per_try_timeout', 'gateway_error', '5xx', 'retriable_status', 'cancelled', 'deadline_exceeded', 'resource_exhausted', 'internal', 'unavailable'] as const;
export type RetryReason = (typeof RETRY_REASONS)[number];

export const TIMEOUT_KINDS = ['per_try', 'total', 'body'] as const;
export type TimeoutMetricKind = (typeof TIMEOUT_KINDS)[number];
