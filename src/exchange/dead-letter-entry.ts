// A dead-letter entry: the record the dead-letter layer (policies/) hands over and the
// journal (deadletter/) stores, so both sides share one shape.
import type { DeadLetterOn } from '../config/schema.js';

export type Delivery = 'not-sent' | 'unknown';

export interface DeadLetterEntry {
  id: string;
  /** ISO 8601. */
  time: string;
  route: string;
  method: string;
  /** The request target as the client sent it: path with query. */
  path: string;
  /** Name/value pairs as received, without the redacted headers. */
  headers: Array<[string, string]>;
  /** The body as base64, when kept. */
  body: string;
  bodyKept: boolean;
  /** The body's length in bytes, when known (-1 when it was streamed). */
  bodyBytes: number;
  /** The error code of the failure (OUTRIGGER_TIMEOUT, ...). */
  code: string;
  reason: DeadLetterOn;
  idempotencyKey: string | null;
  delivery: Delivery;
  replayed: { at: string; status: number } | null;
  attempts: Array<{ at: string; status: number; error: string | null }>;
}
