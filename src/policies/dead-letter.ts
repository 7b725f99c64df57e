// Dead letter: a non-idempotent request (one the retry rules would not repeat) that ends in
// a proxy-made failure listed in `deadLetter.on` is handed to the route's journal, so an
// operator can inspect and replay it. Sits just inside fallback, so a request answered
// with a fallback is recorded too; the client's answer is unchanged, plus
// `x-outrigger-dead-letter: <id>` (http.ts and StaticReply read `ex.deadLetterId`).
// Recording is memory work only; the journal writes in the background.
import type { DeadLetterEntry } from '../exchange/dead-letter-entry.js';
import type { EffectiveRoute } from '../config/load.js';
import type { DeadLetterOn } from '../config/schema.js';
import { ProxyError, type ErrorCode } from '../errors.js';
import type { Exchange, Handler, RouteContext } from '../exchange/exchange.js';
import { RetryPlan } from './retry.js';

const REASON_OF: Partial<Record<ErrorCode, DeadLetterOn>> = {
  OUTRIGGER_BREAKER_OPEN: 'breaker-open',
  OUTRIGGER_TIMEOUT: 'timeout',
  OUTRIGGER_UPSTREAM_UNAVAILABLE: 'upstream-unavailable',
  OUTRIGGER_OVERLOADED: 'overloaded',
};

/** Headers never kept in an entry. */
export const ALWAYS_REDACTED = ['authorization', 'cookie', 'proxy-authorization'] as const;

/** What the layer hands over: a new entry, never replayed or retried yet; the journal stores it as is. */
export type DeadLetterRecord = Omit<DeadLetterEntry, 'replayed' | 'attempts'> & { replayed: null; attempts: [] };

/** Where entries go: the route's journal, and its counters. */
export interface DeadLetterSink {
  nextId(): string;
  record(entry: DeadLetterRecord): void;
}

export class DeadLetterPlan {
  private readonly on: ReadonlySet<DeadLetterOn>;
  private readonly redacted: ReadonlySet<string>;
  private readonly retry: RetryPlan;

  constructor(
    private readonly settings: EffectiveRoute['deadLetter'],
    retry: EffectiveRoute['retry'],
    private readonly sink: DeadLetterSink,
  ) {
    this.on = new Set(settings.on);
    this.redacted = new Set([...ALWAYS_REDACTED, ...settings.redactHeaders]);
    this.retry = new RetryPlan(retry);
  }

  /** Records the exchange if the failure qualifies; returns the id or null. */
  consider(ex: Exchange, err: ProxyError): string | null {
    const reason = REASON_OF[err.code];
    if (reason === undefined || !this.on.has(reason) || ex.upgrade !== null || ex.clientGone) return null;
    // What the retry rules would repeat is not lost: the client can (and should) retry it.
    if (this.retry.methodAllows(ex, null)) return null;
    const raw = ex.req.rawHeaders;
    const headers: Array<[string, string]> = [];
    let key: string | null = null;
    for (let i = 0; i + 1 < raw.length; i += 2) {
      const name = raw[i] as string;
      const lower = name.toLowerCase();
      if (lower === 'idempotency-key') key ??= raw[i + 1] as string;
      if (!this.redacted.has(lower)) headers.push([name, raw[i + 1] as string]);
    }
    const b = ex.body;
    let body = '';
    let bodyKept = true;
    let bodyBytes = 0;
    if (Buffer.isBuffer(b)) {
      bodyBytes = b.length;
      if (b.length <= this.settings.maxBodyBytes) body = b.toString('base64');
      else bodyKept = false;
    } else if (b !== null) {
      bodyKept = false;
      const cl = Number(ex.req.headers['content-length']);
      bodyBytes = Number.isFinite(cl) ? cl : -1;
    }
    const id = this.sink.nextId();
    this.sink.record({
      id,
      time: new Date().toISOString(),
      route: ex.route.name,
      method: ex.method,
      path: ex.req.url ?? ex.path,
      headers,
      body,
      bodyKept,
      bodyBytes,
      code: err.code,
      reason,
      idempotencyKey: key,
      delivery: ex.maybeSent ? 'unknown' : 'not-sent',
      replayed: null,
      attempts: [],
    });
    ex.deadLetterId = id;
    return id;
  }

  layer<R extends RouteContext>(next: Handler<R>): Handler<R> {
    return (ex) =>
      next(ex).catch((err: unknown) => {
        if (err instanceof ProxyError) this.consider(ex, err);
        throw err;
      });
  }
}
