import { describe, expect, it } from 'vitest';
import type { EffectiveBreaker } from '../../src/config/load.js';
import { Breaker, BreakerOpenError, type BreakerState } from '../../src/policies/breaker.js';
import { AttemptError } from '../../src/exchange/outcome.js';
import { ClientGoneError } from '../../src/proxy/exchange.js';
import { sleep, waitFor } from '../helpers/wait.js';

function make(s: Partial<EffectiveBreaker> = {}) {
  const transitions: Array<[BreakerState, BreakerState]> = [];
  let rejects = 0;
  const b = new Breaker(
    'b',
    { enabled: true, name: 'b', halfOpenAfter: 10_000, failOn: ['connect-failure', 'reset', 'timeout', 'gateway-error'], probeTimeout: 5000, ...(s.failureRate ? {} : { consecutiveFailures: 3 }), ...s },
    {
      onTransition: (_b, from, to) => transitions.push([from, to]),
      onReject: () => rejects++,
    },
  );
  return { b, transitions, rejects: () => rejects };
}

const status = (s: number) => () => Promise.resolve({ status: s });
const failWith = (kind: ConstructorParameters<typeof AttemptError>[0]) => () => Promise.reject(new AttemptError(kind));
const settle = (p: Promise<unknown>) => p.then(() => 'ok', (e: unknown) => e);

describe('Breaker (consecutive)', () => {
  it('opens after exactly N failures in a row, and a success resets the count', async () => {
    const { b, transitions } = make({ consecutiveFailures: 3 });
    await b.execute(status(503));
    await b.execute(status(503));
    await b.execute(status(200));
    expect(b.consecutiveFailures).toBe(0);
    await b.execute(status(503));
    await b.execute(status(502));
    expect(b.state).toBe('closed');
    await settle(b.execute(failWith('reset')));
    expect(b.state).toBe('open');
    expect(b.opens).toBe(1);
    expect(transitions).toEqual([['closed', 'open']]);
  });

  it('fails fast while open without calling the function, and counts the rejection', async () => {
    const { b, rejects } = make({ consecutiveFailures: 1, halfOpenAfter: 5000 });
    await b.execute(status(504));
    let called = 0;
    const err = await settle(b.execute(() => (called++, Promise.resolve({ status: 200 }))));
    expect(err).toBeInstanceOf(BreakerOpenError);
    expect((err as BreakerOpenError).retryAfterSeconds).toBe(5);
    expect(called).toBe(0);
    expect(rejects()).toBe(1);
    expect(b.snapshot()).toMatchObject({ name: 'b', state: 'open', opens: 1, consecutiveFailures: 1, retryAfterSeconds: 5 });
  });

  it('judges statuses and failure kinds by failOn', () => {
    const gw = make({ failOn: ['gateway-error'] }).b;
    expect([500, 502, 503, 504, 429, 404].map((s) => gw.isFailureStatus(s))).toEqual([false, true, true, true, false, false]);
    const all = make({ failOn: ['5xx'] }).b;
    expect([500, 501, 599, 499].map((s) => all.isFailureStatus(s))).toEqual([true, true, true, false]);
    const codes = make({ failOn: [429, 500] }).b;
    expect([429, 500, 503, 404].map((s) => codes.isFailureStatus(s))).toEqual([true, true, false, false]);
  });

  it('does not count failures failOn leaves out, nor a client that went away', async () => {
    const { b } = make({ consecutiveFailures: 1, failOn: ['timeout'] });
    await settle(b.execute(failWith('connect-failure')));
    await settle(b.execute(status(503)));
    await settle(b.execute(() => Promise.reject(new ClientGoneError())));
    await settle(b.execute(failWith('client-abort')));
    expect(b.state).toBe('closed');
    expect(b.consecutiveFailures).toBe(0);
    await settle(b.execute(failWith('timeout')));
    expect(b.state).toBe('open');
  });

  it('half-opens after halfOpenAfter: one probe, others fail fast; success closes', async () => {
    const { b, transitions } = make({ consecutiveFailures: 1, halfOpenAfter: 100 });
    await b.execute(status(503));
    expect(b.state).toBe('open');
    let release!: () => void;
    const probe = await waitFor(
      async () => {
        const probed = b.execute((isProbe) => new Promise<{ status: number; isProbe: boolean }>((r) => (release = () => r({ status: 200, isProbe }))));
        const early = await Promise.race([probed.then(() => null, (e: unknown) => e), new Promise((r) => setTimeout(() => r('pending'), 5))]);
        return early === 'pending' ? { probed } : null;
      },
      { interval: 20, what: 'the half-open probe' },
    );
    expect(b.state).toBe('half-open');
    // A second call while the probe is out fails fast instead of queueing behind it.
    const second = await settle(b.execute(status(200)));
    expect(second).toBeInstanceOf(BreakerOpenError);
    release();
    expect((await probe.probed).isProbe).toBe(true);
    expect(b.state).toBe('closed');
    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
  });

  it.each([
    ['a client that aborts its upload', () => new AttemptError('client-abort')],
    ['a client that leaves', () => new ClientGoneError()],
    ['a bug in the proxy', () => new TypeError('boom')],
  ])('gives no verdict on a half-open probe ended by %s: still half-open, and the next call probes', async (_what, error) => {
    const { b, transitions } = make({ consecutiveFailures: 2, halfOpenAfter: { base: 60, max: 1000 } });
    await b.execute(status(503));
    await b.execute(status(503));
    expect(b.state).toBe('open');
    const failuresBefore = b.consecutiveFailures;
    // The probe goes out once the open time is up, and ends without a verdict.
    const err = error();
    const first = await waitFor(async () => {
      const r = await settle(b.execute(() => Promise.reject(err)));
      return r instanceof BreakerOpenError ? null : r;
    }, { interval: 10, what: 'the probe' });
    expect(first).toBe(err);
    expect(b.state).toBe('half-open');
    expect(b.opens).toBe(1);
    expect(b.consecutiveFailures).toBe(failuresBefore);
    // No wait, and the open time did not grow: the very next call is the probe.
    let sawProbe = false;
    await b.execute((probe) => {
      sawProbe = probe;
      return Promise.resolve({ status: 200 });
    });
    expect(sawProbe).toBe(true);
    expect(b.state).toBe('closed');
    expect(transitions).toEqual([
      ['closed', 'open'],
      ['open', 'half-open'],
      ['half-open', 'closed'],
    ]);
  });

  it('still counts a probe the upstream failed, and an upstream verdict failOn does not list as a success', async () => {
    const { b } = make({ consecutiveFailures: 1, halfOpenAfter: 30, failOn: ['connect-failure'] });
    await settle(b.execute(failWith('connect-failure')));
    expect(b.state).toBe('open');
    await waitFor(async () => (await settle(b.execute(failWith('connect-failure')))) instanceof AttemptError && b.state === 'open', { interval: 10, what: 'a failed probe' });
    expect(b.opens).toBe(2);
    // A reset is not in failOn: the upstream answered the probe in a way the route accepts.
    await waitFor(async () => (await settle(b.execute(failWith('reset')))) instanceof AttemptError, { interval: 10, what: 'a reset probe' });
    expect(b.state).toBe('closed');
  });

  it('re-opens on a failed probe, with a growing open time when halfOpenAfter is { base, max }', async () => {
    const { b } = make({ consecutiveFailures: 1, halfOpenAfter: { base: 50, max: 150 } });
    await b.execute(status(503));
    expect(b.openForMs).toBe(50);
    const probeFails = () => waitFor(async () => (await settle(b.execute(status(503)))) === 'ok', { interval: 10, what: 'a probe' });
    await probeFails();
    expect(b.state).toBe('open');
    expect(b.opens).toBe(2);
    expect(b.openForMs).toBe(100);
    await probeFails();
    expect(b.openForMs).toBe(150);
    await probeFails();
    expect(b.openForMs).toBe(150);
    // A successful probe closes; the next trip starts from base again.
    await waitFor(async () => (await settle(b.execute(status(200)))) === 'ok', { interval: 10, what: 'a good probe' });
    expect(b.state).toBe('closed');
    await b.execute(status(503));
    expect(b.openForMs).toBe(50);
  });
});

describe('Breaker (isolate)', () => {
  it('isolate holds it open until reset', async () => {
    const { b, transitions } = make({ halfOpenAfter: 3000 });
    b.isolate();
    b.isolate();
    expect(b.state).toBe('isolated');
    const err = await settle(b.execute(status(200)));
    expect(err).toBeInstanceOf(BreakerOpenError);
    expect(b.snapshot().retryAfterSeconds).toBe(3);
    expect(b.reset()).toBe(true);
    expect(b.state).toBe('closed');
    expect(b.reset()).toBe(false);
    expect(await b.execute(status(200))).toEqual({ status: 200 });
    expect(transitions).toEqual([
      ['closed', 'isolated'],
      ['isolated', 'closed'],
    ]);
  });
});

describe('Breaker epoch', () => {
  it('grows on every transition to closed: a probe that closes it, a reset of an isolation or of an open breaker', async () => {
    const { b } = make({ consecutiveFailures: 1, halfOpenAfter: 50 });
    expect(b.epoch).toBe(0);
    await b.execute(status(503));
    expect([b.state, b.epoch]).toEqual(['open', 0]);
    await sleep(70);
    await b.execute(status(200)); // the probe
    expect([b.state, b.epoch]).toEqual(['closed', 1]);
    await b.execute(status(200));
    expect(b.epoch).toBe(1);
    b.isolate();
    expect(b.epoch).toBe(1);
    b.reset();
    expect([b.state, b.epoch]).toEqual(['closed', 2]);
    await b.execute(status(503));
    b.reset();
    expect([b.state, b.epoch]).toEqual(['closed', 3]);
    expect(b.reset()).toBe(false);
    expect(b.epoch).toBe(3);
  });

  it('does not grow when a probe ends without a verdict (still half-open)', async () => {
    const { b } = make({ consecutiveFailures: 1, halfOpenAfter: 50 });
    await b.execute(status(503));
    await sleep(70);
    await settle(b.execute(() => Promise.reject(new ClientGoneError())));
    expect(b.epoch).toBe(0);
    await b.execute(status(200));
    expect([b.state, b.epoch]).toEqual(['closed', 1]);
  });
});

describe('Breaker (failureRate)', () => {
  it('stays closed below minRequests, then opens above the threshold', async () => {
    const { b } = make({ failureRate: { threshold: 0.5, window: 10_000, minRequests: 4 } });
    for (let i = 0; i < 3; i++) await b.execute(status(503));
    expect(b.state).toBe('closed');
    await b.execute(status(503));
    expect(b.state).toBe('open');
  });

  it('does not open at or below the threshold', async () => {
    const { b } = make({ failureRate: { threshold: 0.5, window: 10_000, minRequests: 4 } });
    for (let i = 0; i < 10; i++) await b.execute(status(i % 2 === 0 ? 200 : 503));
    expect(b.state).toBe('closed');
  });

  it.each([4, 7, 20, 21, 25])('opens at exactly minRequests=%d failing calls', async (minRequests) => {
    const { b } = make({ failureRate: { threshold: 0.5, window: 10_000, minRequests } });
    for (let i = 0; i < minRequests - 1; i++) await b.execute(status(503));
    expect(b.state).toBe('closed');
    await b.execute(status(503));
    expect(b.state).toBe('open');
  });
});

describe('Breaker damping (flapping.damp)', () => {
  it('multiplies the open time cockatiel uses by dampFactor, and stops when it is back to 1', async () => {
    const { b } = make({ consecutiveFailures: 1, halfOpenAfter: 100 });
    b.dampFactor = 4;
    await settle(b.execute(status(503)));
    expect(b.state).toBe('open');
    expect(b.openForMs).toBe(400);
    // Past the plain open time but inside the damped one: still refused, no probe.
    await new Promise((r) => setTimeout(r, 150));
    expect(await settle(b.execute(status(200)))).toBeInstanceOf(BreakerOpenError);
    b.dampFactor = 1;
    await waitFor(async () => (await settle(b.execute(status(200)))) === 'ok', { timeout: 5000 });
    expect(b.state).toBe('closed');
    await settle(b.execute(status(503)));
    expect(b.openForMs).toBe(100);
  });
});

describe('probe timeout', () => {
  const probeWith = async (err: AttemptError) => {
    const { b } = make({ consecutiveFailures: 1, halfOpenAfter: 50, failOn: ['5xx'] });
    await settle(b.execute(status(503)));
    expect(b.snapshot().state).toBe('open');
    await sleep(120);
    await settle(b.execute(() => Promise.reject(err)));
    return b.snapshot().state;
  };

  it('counts a probe that ran out of probeTimeout as a failure even when failOn omits timeout', async () => {
    expect(await probeWith(new AttemptError('timeout', undefined, 'per_try', true))).toBe('open');
  });

  it('(control) an ordinary timeout that failOn omits is no failure, so cockatiel closes on it', async () => {
    expect(await probeWith(new AttemptError('timeout', undefined, 'per_try'))).toBe('closed');
  });
});
