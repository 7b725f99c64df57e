// Errors the proxy makes itself. Every layer throws or returns a ProxyError; only
// `errorResponse` turns one into HTTP, so codes, statuses and body shape live here alone.

export const ERROR_CODES = {
  OUTRIGGER_NO_ROUTE: { status: 404, message: 'no route matches this request' },
  OUTRIGGER_BREAKER_OPEN: { status: 503, message: 'the circuit breaker is open' },
  OUTRIGGER_TIMEOUT: { status: 504, message: 'the upstream did not answer within the deadline' },
  OUTRIGGER_UPSTREAM_UNAVAILABLE: { status: 502, message: 'the upstream could not be reached' },
  OUTRIGGER_OVERLOADED: { status: 503, message: 'too many requests in flight on this route' },
  OUTRIGGER_DRAINING: { status: 503, message: 'the proxy is draining and takes no new upgraded connections; retry on another instance' },
  OUTRIGGER_BAD_REQUEST: { status: 400, message: 'the request cannot be proxied' },
  OUTRIGGER_INTERNAL: { status: 500, message: 'the proxy failed unexpectedly; see its error log' },
  OUTRIGGER_UPSTREAM_RESET: { status: 502, message: 'the upstream broke off its response before any of it reached the client' },
  OUTRIGGER_REQUEST_TIMEOUT: { status: 408, message: 'the client did not send the whole request within requestTimeout' },
  OUTRIGGER_HEADERS_TOO_LARGE: { status: 431, message: 'the request has too many header lines or too large a header block' },
  OUTRIGGER_TARGET_TOO_LONG: { status: 414, message: 'the request target is longer than http.maxTargetBytes' },
  OUTRIGGER_LOOP_DETECTED: { status: 508, message: 'the request has already passed through this proxy (Via)' },
  OUTRIGGER_METHOD_NOT_ALLOWED: { status: 405, message: 'the method is not supported by this proxy' },
  OUTRIGGER_REDIRECT: { status: 307, message: 'the request target has escaped slashes; follow the location header to the unescaped path' },
  OUTRIGGER_GRPC_UPSTREAM_HTTP1: { status: 502, message: 'gRPC needs HTTP/2 to the upstream, and this route\'s upstream has protocol http1' },
} as const;

/**
 * The grpc-status a proxy-made error carries for a gRPC request (README, Error codes).
 * Timeout is 4 DEADLINE_EXCEEDED (Linkerd's choice; Envoy says 14 UNAVAILABLE): the call ran
 * out of its deadline, which the client set, and a client retrying UNAVAILABLE would retry
 * a call that has no time left; 4 tells it the deadline, not the server, was the limit.
 */
export const GRPC_STATUS_OF: Record<ErrorCode, number> = {
  OUTRIGGER_NO_ROUTE: 12,
  OUTRIGGER_BREAKER_OPEN: 14,
  OUTRIGGER_TIMEOUT: 4,
  OUTRIGGER_UPSTREAM_UNAVAILABLE: 14,
  OUTRIGGER_OVERLOADED: 8,
  OUTRIGGER_DRAINING: 14,
  OUTRIGGER_BAD_REQUEST: 3,
  OUTRIGGER_INTERNAL: 13,
  OUTRIGGER_UPSTREAM_RESET: 14,
  OUTRIGGER_REQUEST_TIMEOUT: 4,
  OUTRIGGER_HEADERS_TOO_LARGE: 3,
  OUTRIGGER_TARGET_TOO_LONG: 3,
  OUTRIGGER_LOOP_DETECTED: 10,
  OUTRIGGER_METHOD_NOT_ALLOWED: 12,
  OUTRIGGER_REDIRECT: 3,
  OUTRIGGER_GRPC_UPSTREAM_HTTP1: 12,
};

/** A gRPC request: its content-type starts with application/grpc (grpc, grpc+proto, grpc-web is not). */
export function isGrpcContentType(ct: string | string[] | undefined): boolean {
  return typeof ct === 'string' && ct.startsWith('application/grpc') && !ct.startsWith('application/grpc-web');
}

/** grpc-message is percent-encoded UTF-8 (gRPC over HTTP/2, "Responses"). */
export function encodeGrpcMessage(msg: string): string {
  let out = '';
  for (const b of Buffer.from(msg, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  return out;
}

export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Base of the errors the policy stack uses for control flow (a refused breaker, a failed
 * attempt, a client that left). They are expected and carry no stack trace: capturing one
 * cost more than the whole fail-fast path (measured with --cpu-prof), and a stack would
 * only point into the proxy's own layers.
 */
export class ControlFlowError extends Error {
  constructor(message: string) {
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
  }
}

export class ProxyError extends ControlFlowError {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    message?: string,
    /** Seconds for a `retry-after` header (breaker-open). */
    readonly retryAfter?: number,
    /** A `location` header (OUTRIGGER_REDIRECT). */
    readonly location?: string,
  ) {
    super(message ?? ERROR_CODES[code].message);
    this.name = 'ProxyError';
    this.status = ERROR_CODES[code].status;
  }
}

export interface ErrorResponse {
  status: number;
  headers: string[];
  body: Buffer;
  /** A gRPC trailers-only response: written as headers with END_STREAM, no body (http.ts writeTrailersOnly). */
  trailersOnly: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * The one place a ProxyError becomes an HTTP response. For a gRPC request it is a
 * trailers-only response: HTTP 200, content-type application/grpc, grpc-status (GRPC_STATUS_OF),
 * a percent-encoded grpc-message, and x-outrigger-error with the usual code.
 */
export function errorResponse(err: ProxyError, route: string | null, attempts: number, requestId: string, grpc = false): ErrorResponse {
  if (grpc) {
    const headers = [
      'content-type', 'application/grpc',
      'grpc-status', String(GRPC_STATUS_OF[err.code]),
      'grpc-message', encodeGrpcMessage(err.message),
      'x-outrigger-error', err.code,
      'x-request-id', requestId,
    ];
    if (attempts > 0) headers.push('x-outrigger-attempts', String(attempts));
    if (err.retryAfter !== undefined) headers.push('retry-after', String(err.retryAfter));
    return { status: 200, headers, body: EMPTY, trailersOnly: true };
  }
  const body = Buffer.from(
    JSON.stringify({ error: { code: err.code, message: err.message, route, attempts } }),
  );
  const headers = [
    'content-type', 'application/json',
    'content-length', String(body.length),
    'x-outrigger-error', err.code,
    'x-request-id', requestId,
  ];
  if (attempts > 0) headers.push('x-outrigger-attempts', String(attempts));
  if (err.retryAfter !== undefined) headers.push('retry-after', String(err.retryAfter));
  if (err.location !== undefined) headers.push('location', err.location);
  if (err.code === 'OUTRIGGER_METHOD_NOT_ALLOWED') headers.push('allow', 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH, TRACE');
  return { status: err.status, headers, body, trailersOnly: false };
}

/** What writeErrorResponse needs of a response (node:http's and node:http2's compat one both fit). */
interface ResponseSink {
  statusCode: number;
  setHeader(name: string, value: string | string[]): unknown;
  writeHead(status: number, headers: string[]): unknown;
  end(body?: Buffer): unknown;
}

/**
 * Writes a made response. A trailers-only one sets its fields and ends without writeHead:
 * node:http2 then sends one HEADERS frame with END_STREAM, which is what gRPC clients read
 * as trailers-only (a writeHead first would send an empty DATA frame to end the stream).
 */
export function writeErrorResponse(res: ResponseSink, r: ErrorResponse, method: string): void {
  if (r.trailersOnly) {
    res.statusCode = r.status;
    const h = r.headers;
    const seen = new Map<string, string[]>();
    for (let i = 0; i < h.length; i += 2) {
      const k = h[i] as string;
      const list = seen.get(k);
      if (list) list.push(h[i + 1] as string);
      else seen.set(k, [h[i + 1] as string]);
    }
    for (const [k, v] of seen) res.setHeader(k, v.length === 1 ? (v[0] as string) : v);
    res.end();
    return;
  }
  res.writeHead(r.status, r.headers);
  res.end(method === 'HEAD' ? undefined : r.body);
}
