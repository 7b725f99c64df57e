import { bulkhead } from 'cockatiel';
import { describe, expect, it } from 'vitest';
import { concurrencyLayer } from '../../src/policies/concurrency.js';
import { ProxyError } from '../../src/errors.js';
import { ClientGoneError, type Exchange, type Handler, type Reply } from '../../src/proxy/exchange.js';

/** Just enough of an Exchange for the concurrency layer. */
function fakeExchange(deadlineMs = Infinity) {
  let finish: () => void = () => undefined;
  const done = new Promise<void>((r) => (finish = r));
  const counts = { overload: 0, timeouts: 0 };
  const ex = {
    finished: false,
    clientGone: false,
    cancel: null as ((err: Error) => void) | null,
    remaining: () => deadlineMs,
    completion: () => done,
    route: { metrics: { overload: { inc: () => counts.overload++ }, timeout: () => counts.timeouts++ } },
  };
  /** What http.ts does when the response ends or the client leaves. */
  const end = (clientGone: boolean) => {
    ex.finished = true;
    if (clientGone) {
      ex.clientGone = true;
      ex.cancel?.(new ClientGoneError());
    }
    finish();
  };
  return { ex: ex as unknown as Exchange, end, counts };
}

const reply: Reply = { status: 200, retryAfter: null, send: () => undefined, discard: () => undefined };
const settle = (p: Promise<unknown>) => p.then(() => 'resolved', (e: unknown) => e);

describe('concurrencyLayer', () => {
  it('admits up to max, refuses beyond max + queue with OVERLOADED', async () => {
    const bh = bulkhead(1, 0);
    const handler = concurrencyLayer(bh, () => Promise.resolve(reply));
    const a = fakeExchange();
    expect(await handler(a.ex)).toBe(reply);
    const b = fakeExchange();
    const err = await settle(handler(b.ex));
    expect(err).toBeInstanceOf(ProxyError);
    expect((err as ProxyError).code).toBe('OUTRIGGER_OVERLOADED');
    expect(b.counts.overload).toBe(1);
    a.end(false);
    await new Promise((r) => setImmediate(r));
    const c = fakeExchange();
    expect(await handler(c.ex)).toBe(reply);
  });

  it('settles a queued request whose client left, and never runs it', async () => {
    const bh = bulkhead(1, 1);
    let ran = 0;
    const next: Handler = () => (ran++, Promise.resolve(reply));
    const handler = concurrencyLayer(bh, next);
    const first = fakeExchange();
    await handler(first.ex);
    const queued = fakeExchange(5000);
    const p = settle(handler(queued.ex));
    queued.end(true); // the client goes away while waiting for a slot
    first.end(false); // the slot frees
    const outcome = await Promise.race([p, new Promise((r) => setTimeout(() => r('still pending'), 500))]);
    expect(outcome).toBeInstanceOf(ClientGoneError);
    expect(ran).toBe(1);
    // A client that left is not a deadline timeout.
    await new Promise((r) => setTimeout(r, 50));
    expect(queued.counts.timeouts).toBe(0);
  });

  it('times out a queued request at its deadline', async () => {
    const bh = bulkhead(1, 1);
    const handler = concurrencyLayer(bh, () => Promise.resolve(reply));
    const first = fakeExchange();
    await handler(first.ex);
    const queued = fakeExchange(50);
    const err = await settle(handler(queued.ex));
    expect((err as ProxyError).code).toBe('OUTRIGGER_TIMEOUT');
    expect(queued.counts.timeouts).toBe(1);
    first.end(false);
  });
});
