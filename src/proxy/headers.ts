// Header rewriting between client and upstream. Works on node's flat rawHeaders arrays
// so that duplicates (set-cookie) and order survive, and nothing is decoded.
// Names are lower-cased by undici's own lookup (it parses the responses too): a well-known
// name comes back as an interned constant, with no toLowerCase and its hash already known
// to the Set lookups below. Like Pool (upstream.ts), the module is loaded by its path.
import { headerNameToString } from 'undici/lib/core/util.js';

/**
 * RFC 9110 7.6.1 hop-by-hop headers, plus the legacy proxy-connection. `Trailer` is not
 * one (RFC 9110 6.6.2 lists the trailer fields the message will carry, end to end).
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'transfer-encoding',
  'upgrade',
]);

/** Request headers the proxy sets itself (or undici refuses to forward). */
const REQUEST_OWNED = new Set(['host', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-request-id', 'expect', 'via']);

/** Adds the header names a Connection value lists (RFC 9110 7.6.1) to `into`, lower-cased. */
function addConnectionTokens(value: string, into: Set<string> | null): Set<string> | null {
  // The usual values, which name no header.
  if (value === 'keep-alive' || value === 'close') return into;
  for (const tok of value.split(',')) {
    const t = tok.trim().toLowerCase();
    if (t && t !== 'close' && t !== 'keep-alive') (into ??= new Set()).add(t);
  }
  return into;
}

/** Names listed in Connection headers, lower-cased; null when there are none (the usual case). */
function connectionTokens(raw: readonly string[]): Set<string> | null {
  let out: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 10 && name.toLowerCase() === 'connection') out = addConnectionTokens(raw[i + 1] as string, out);
  }
  return out;
}

export interface ForwardInfo {
  clientAddress: string;
  host: string;
  requestId: string;
  /** Host header for the upstream. */
  upstreamHost: string | null;
  /** The proxy's pseudonym in Via (http.via). */
  via?: string;
}

/** Builds the upstream request headers from the client's raw headers. */
export function upstreamRequestHeaders(raw: readonly string[], info: ForwardInfo): string[] {
  const extra = connectionTokens(raw);
  const out: string[] = [];
  let xff = '';
  let via = '';
  // An ingress in front of the app knows the original scheme and host better than we do.
  let proto: string | null = null;
  let fwdHost: string | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    // HTTP/2 pseudo-headers (:method, :path, :authority, :scheme) are the request line, not fields.
    if (name.charCodeAt(0) === 58) continue;
    const lower = headerNameToString(name);
    if (HOP_BY_HOP.has(lower) || (extra !== null && extra.has(lower))) continue;
    if (REQUEST_OWNED.has(lower)) {
      const v = raw[i + 1] as string;
      if (lower === 'x-forwarded-for') xff = xff ? `${xff}, ${v}` : v;
      else if (lower === 'via') via = via ? `${via}, ${v}` : v;
      else if (lower === 'x-forwarded-proto') proto ??= v;
      else if (lower === 'x-forwarded-host') fwdHost ??= v;
      continue;
    }
    out.push(name, raw[i + 1] as string);
  }
  // Without a host header undici sends the endpoint's own authority.
  if (info.upstreamHost !== null) out.push('host', info.upstreamHost);
  const me = `1.1 ${info.via ?? 'outrigger'}`;
  out.push(
    'x-forwarded-for', xff ? `${xff}, ${info.clientAddress}` : info.clientAddress,
    'x-forwarded-proto', proto ?? 'http',
    'x-forwarded-host', fwdHost ?? info.host,
    'x-request-id', info.requestId,
    'via', via ? `${via}, ${me}` : me,
  );
  return out;
}

/**
 * Upgrade handshakes (WebSocket, tunnels) are sent with node's http client or ws, which take
 * an object: the same headers as upstreamRequestHeaders, minus `skip`, one entry per name.
 */
export function upgradeRequestHeaders(raw: readonly string[], info: ForwardInfo, skip: ReadonlySet<string>): Record<string, string> {
  const flat = upstreamRequestHeaders(raw, info);
  const out: Record<string, string> = {};
  for (let i = 0; i < flat.length; i += 2) {
    const k = (flat[i] as string).toLowerCase();
    if (skip.has(k)) continue;
    const v = flat[i + 1] as string;
    out[k] = out[k] !== undefined ? `${out[k]}, ${v}` : v;
  }
  return out;
}

export interface ResponseHead {
  headers: string[];
  contentLength: number;
  retryAfter: string | null;
  /** The response declares trailers (a Trailer header). */
  trailer: boolean;
  /** The body is chunked (Transfer-Encoding ends in chunked), so its end is marked. */
  chunked: boolean;
}

/** Converts undici's raw response headers to a flat array for res.writeHead, minus hop-by-hop. */
export function clientResponseHeaders(raw: readonly Buffer[]): ResponseHead {
  const names: string[] = new Array(raw.length / 2);
  let extra: Set<string> | null = null;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = headerNameToString(raw[i] as Buffer);
    names[i / 2] = lower;
    if (lower === 'connection') extra = addConnectionTokens((raw[i + 1] as Buffer).toString('latin1'), extra);
  }
  const headers: string[] = [];
  let contentLength = -1;
  let retryAfter: string | null = null;
  let trailer = false;
  let chunked = false;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = names[i / 2] as string;
    if (lower === 'transfer-encoding') chunked = /(?:^|,)[ \t]*chunked[ \t]*$/i.test((raw[i + 1] as Buffer).toString('latin1'));
    if (HOP_BY_HOP.has(lower) || (extra !== null && extra.has(lower))) continue;
    const value = (raw[i + 1] as Buffer).toString('latin1');
    if (lower === 'content-length') contentLength = Number(value);
    else if (lower === 'retry-after') retryAfter = value;
    else if (lower === 'trailer') trailer = true;
    headers.push(lower, value);
  }
  return { headers, contentLength, retryAfter, trailer, chunked };
}

/** Response headers without `trailer`, for a response that cannot carry trailers (Node refuses the header there). */
export function withoutTrailer(headers: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i] !== 'trailer') out.push(headers[i] as string, headers[i + 1] as string);
  return out;
}

/** Raw header pairs (undici's Buffers) as [name, value] pairs: for trailers and interim heads. */
export function headerPairs(raw: ReadonlyArray<Buffer | string>): Array<[string, string]> {
  const str = (x: Buffer | string | undefined) => (typeof x === 'string' ? x : x === undefined ? '' : x.toString('latin1'));
  const out: Array<[string, string]> = [];
  for (let i = 0; i < raw.length; i += 2) out.push([str(raw[i]), str(raw[i + 1])]);
  return out;
}

export { parseRetryAfter } from '../exchange/retry-after.js';

/** Header pairs as one object (repeated names joined with ", "), for node:http2, which takes no pairs. */
export function trailerObject(pairs: ReadonlyArray<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of pairs) {
    const n = k.toLowerCase();
    out[n] = out[n] === undefined ? v : `${out[n]}, ${v}`;
  }
  return out;
}
