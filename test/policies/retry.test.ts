import { describe, expect, it } from 'vitest';
import { loadConfigText } from '../../src/config/load.js';
import { RetryPlan, finalError } from '../../src/policies/retry.js';
import { AttemptError, attemptOutcomeOfFailure, attemptOutcomeOfStatus, classifyError } from '../../src/exchange/outcome.js';
import { attemptBudget } from '../../src/policies/timeout.js';
import type { Exchange } from '../../src/proxy/exchange.js';

function plan(retry: string): RetryPlan {
  const c = loadConfigText(`upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }\nroutes: [{ name: r, upstream: a, retry: ${retry} }]\n`, '/tmp/x.yaml').config;
  return new RetryPlan(c.routes[0]!.retry);
}

const ex = (method: string, headers: Record<string, string> = {}) => ({ method, req: { headers } }) as unknown as Exchange;

describe('RetryPlan.reasonForStatus', () => {
  it('default on: gateway-error means 502, 503, 504 only', () => {
    const p = plan('{}');
    expect([500, 502, 503, 504, 429, 404, 200].map((s) => p.reasonForStatus(s))).toEqual([null, 'gateway_error', 'gateway_error', 'gateway_error', null, null, null]);
  });

  it('5xx means any 5xx', () => {
    const p = plan('{ on: [5xx] }');
    expect([500, 501, 503, 599, 429].map((s) => p.reasonForStatus(s))).toEqual(['5xx', '5xx', '5xx', '5xx', null]);
  });

  it('retriable-status means the codes in statuses', () => {
    const p = plan('{ on: [retriable-status], statuses: [429, 503] }');
    expect([429, 503, 502, 500].map((s) => p.reasonForStatus(s))).toEqual(['retriable_status', 'retriable_status', null, null]);
  });

  it('statuses without retriable-status in on do nothing', () => {
    const p = plan('{ on: [connect-failure], statuses: [429] }');
    expect(p.reasonForStatus(429)).toBeNull();
    expect(p.reasonForStatus(503)).toBeNull();
  });
});

describe('RetryPlan.reasonForFailure', () => {
  it('maps each failure kind to its `on` name; a per-try timeout counts as reset', () => {
    const all = plan('{ on: [connect-failure, refused-stream, reset] }');
    expect(all.reasonForFailure(new AttemptError('connect-failure'))).toBe('connect_failure');
    expect(all.reasonForFailure(new AttemptError('refused-stream'))).toBe('refused_stream');
    expect(all.reasonForFailure(new AttemptError('reset'))).toBe('reset');
    expect(all.reasonForFailure(new AttemptError('timeout', undefined, 'per_try'))).toBe('per_try_timeout');
    expect(all.reasonForFailure(new AttemptError('timeout', undefined, 'total'))).toBeNull();
    expect(all.reasonForFailure(new AttemptError('client-abort'))).toBeNull();
  });

  it('retries only what `on` names', () => {
    const p = plan('{ on: [connect-failure] }');
    expect(p.reasonForFailure(new AttemptError('refused-stream'))).toBeNull();
    expect(p.reasonForFailure(new AttemptError('reset'))).toBeNull();
    expect(p.reasonForFailure(new AttemptError('timeout', undefined, 'per_try'))).toBeNull();
  });
});

describe('RetryPlan.methodAllows', () => {
  const p = plan('{}');
  it('allows the idempotent methods for any failure', () => {
    for (const m of ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE']) expect(p.methodAllows(ex(m), 'reset')).toBe(true);
    expect(p.methodAllows(ex('GET'), null)).toBe(true);
  });

  it('allows POST and PATCH only when the request provably never reached the upstream', () => {
    for (const m of ['POST', 'PATCH']) {
      expect(p.methodAllows(ex(m), 'connect-failure')).toBe(true);
      expect(p.methodAllows(ex(m), 'refused-stream')).toBe(true);
      expect(p.methodAllows(ex(m), 'reset')).toBe(false);
      expect(p.methodAllows(ex(m), 'timeout')).toBe(false);
      expect(p.methodAllows(ex(m), null)).toBe(false);
    }
  });

  it('allows any method carrying the idempotency header', () => {
    expect(p.methodAllows(ex('POST', { 'idempotency-key': 'k1' }), null)).toBe(true);
    expect(p.methodAllows(ex('POST', { 'idempotency-key': 'k1' }), 'reset')).toBe(true);
    const custom = plan('{ idempotencyHeader: X-Request-Key }');
    expect(custom.methodAllows(ex('POST', { 'x-request-key': 'k' }), null)).toBe(true);
    expect(custom.methodAllows(ex('POST', { 'idempotency-key': 'k' }), null)).toBe(false);
  });
});

describe('finalError', () => {
  it('maps failures to the proxy error codes', () => {
    expect(finalError(new AttemptError('timeout', undefined, 'total')).code).toBe('OUTRIGGER_TIMEOUT');
    expect(finalError(new AttemptError('timeout', undefined, 'per_try')).code).toBe('OUTRIGGER_TIMEOUT');
    for (const k of ['connect-failure', 'refused-stream', 'reset'] as const) {
      const e = finalError(new AttemptError(k));
      expect(e.code).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
      expect(e.status).toBe(502);
    }
  });
});

describe('outcome classification', () => {
  it('classifies undici errors by how far the request got', () => {
    const refused = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    expect(classifyError(refused, false, false)).toBe('connect-failure');
    expect(classifyError(Object.assign(new Error('t'), { code: 'UND_ERR_CONNECT_TIMEOUT' }), false, false)).toBe('connect-failure');
    const closed = Object.assign(new Error('closed'), { code: 'UND_ERR_SOCKET' });
    expect(classifyError(closed, false, false)).toBe('connect-failure');
    expect(classifyError(closed, true, false)).toBe('refused-stream');
    expect(classifyError(closed, true, true)).toBe('reset');
  });

  it('maps to the outcome label values', () => {
    expect([200, 304, 404, 429, 500, 503].map(attemptOutcomeOfStatus)).toEqual(['success', 'success', 'http_4xx', 'http_4xx', 'http_5xx', 'http_5xx']);
    expect(attemptOutcomeOfFailure('connect-failure')).toBe('connect_failure');
    expect(attemptOutcomeOfFailure('refused-stream')).toBe('reset');
    expect(attemptOutcomeOfFailure('reset')).toBe('reset');
    expect(attemptOutcomeOfFailure('timeout')).toBe('timeout');
    expect(attemptOutcomeOfFailure('client-abort')).toBeNull();
  });
});

describe('attemptBudget', () => {
  it('gives each attempt min(perTryTimeout, time left)', () => {
    expect(attemptBudget(1000, 0)).toEqual({ ms: 1000, kind: 'total', probeLimited: false });
    expect(attemptBudget(1000, 300)).toEqual({ ms: 300, kind: 'per_try', probeLimited: false });
    expect(attemptBudget(200, 300)).toEqual({ ms: 200, kind: 'total', probeLimited: false });
    expect(attemptBudget(Infinity, 300)).toEqual({ ms: 300, kind: 'per_try', probeLimited: false });
    expect(attemptBudget(Infinity, 0)).toEqual({ ms: Infinity, kind: 'total', probeLimited: false });
    expect(attemptBudget(-5, 300).ms).toBeLessThanOrEqual(0);
  });

  it('bounds a half-open probe by probeTimeout when that is the smallest limit', () => {
    expect(attemptBudget(Infinity, 0, 5000)).toEqual({ ms: 5000, kind: 'per_try', probeLimited: true });
    expect(attemptBudget(10_000, 8000, 5000)).toEqual({ ms: 5000, kind: 'per_try', probeLimited: true });
    expect(attemptBudget(10_000, 3000, 5000)).toEqual({ ms: 3000, kind: 'per_try', probeLimited: false });
    expect(attemptBudget(2000, 0, 5000)).toEqual({ ms: 2000, kind: 'total', probeLimited: false });
    expect(attemptBudget(5000, 0, 5000)).toEqual({ ms: 5000, kind: 'total', probeLimited: false });
  });
});
