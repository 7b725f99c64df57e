// Retry-After (RFC 9110 10.2.3), read by the retry layer whatever the transport.
/** Retry-After in milliseconds from delta-seconds or an HTTP date; null when unparseable. */
export function parseRetryAfter(value: string, now: number = Date.now()): number | null {
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  // Every HTTP-date form starts with a day name. Date.parse alone is lenient: it reads
  // "-1" or "1.5" as dates in 2001, which would turn junk into "retry at once".
  if (!/^[A-Za-z]{3}/.test(v)) return null;
  const t = Date.parse(v);
  if (Number.isNaN(t)) return null;
  return Math.max(0, t - now);
}
