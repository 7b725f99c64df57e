// Concurrency limit (cockatiel bulkhead): at most `max` requests in flight per route,
// `queue` more waiting. A slot is held until the response has fully ended, not just
// until headers, because that is when the upstream connection is free again.
import { BulkheadRejectedError, type BulkheadPolicy } from 'cockatiel';
import { ProxyError } from '../errors.js';
import { ClientGoneError, type Exchange, type Handler, type Reply, type RouteContext } from '../exchange/exchange.js';

function overloaded(ex: Exchange): ProxyError {
  ex.route.metrics.overload.inc();
  return new ProxyError('OUTRIGGER_OVERLOADED');
}

export function concurrencyLayer<R extends RouteContext>(bulkhead: BulkheadPolicy, next: Handler<R>): Handler<R> {
  return (ex) => {
    if (bulkhead.executionSlots > 0) {
      // A free slot: cockatiel runs `fn` synchronously, so the header phase starts (and its
      // promise is returned) without a promise of our own around it. The slot is held until
      // the exchange completes; that promise never rejects.
      let headers: Promise<Reply> | null = null;
      void bulkhead.execute(() => {
        headers = next(ex);
        return ex.completion();
      });
      if (headers !== null) return headers;
    }
    if (bulkhead.executionSlots <= 0 && bulkhead.queueSlots <= 0) return Promise.reject(overloaded(ex));
    return new Promise<Reply>((resolve, reject) => {
      let queueTimer: NodeJS.Timeout | null = null;
      // Set once the request stopped waiting (deadline, client gone): when its turn comes,
      // it must not go upstream. The response may not have closed yet, so ex.finished is
      // not enough. (cockatiel keeps the stale entry in its queue until then.)
      let gaveUp = false;
      if (bulkhead.executionSlots <= 0) {
        // Queued: the deadline still holds while waiting for a slot.
        const left = ex.remaining();
        if (left !== Infinity) {
          queueTimer = setTimeout(() => {
            gaveUp = true;
            ex.route.metrics.timeout('total');
            reject(new ProxyError('OUTRIGGER_TIMEOUT', 'the deadline passed while waiting for a concurrency slot'));
          }, Math.max(0, left));
        }
        // A client that leaves while queued settles the request now (and is not a timeout).
        // Left pending, the stack's promise would never settle, holding the exchange forever.
        ex.cancel = (err) => {
          gaveUp = true;
          if (queueTimer !== null) clearTimeout(queueTimer);
          ex.cancel = null;
          reject(err);
        };
      }
      bulkhead
        .execute(() => {
          if (queueTimer !== null) clearTimeout(queueTimer);
          if (gaveUp) return undefined;
          ex.cancel = null;
          if (ex.finished) {
            reject(new ClientGoneError());
            return undefined;
          }
          next(ex).then(resolve, reject);
          return ex.completion();
        })
        .catch((err: unknown) => {
          if (queueTimer !== null) clearTimeout(queueTimer);
          reject(err instanceof BulkheadRejectedError ? overloaded(ex) : err);
        });
    });
  };
}
