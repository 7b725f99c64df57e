// The config file's schema: the single source of the config types and of the generated
// JSON Schema (schema/outrigger.schema.json). Every key carries its default here, so the
// README, the JSON Schema and the runtime can never disagree about one.
import { z } from 'zod';
import { parseDuration, parseListen, parseSize } from '../util/units.js';

const describeGot = (v: unknown): string =>
  typeof v === 'string' ? JSON.stringify(v) : v === null ? 'null' : Array.isArray(v) ? 'a list' : typeof v === 'object' ? 'an object' : String(v);

/** A string-or-number field parsed by `parse`; `what` names it in errors ("a duration like \"250ms\""). */
function unit(what: string, parse: (v: string | number) => number | undefined, description: string, max?: { value: number; text: string }) {
  const message = (v: unknown) => `expected ${what}, got ${describeGot(v)}`;
  return z
    .union([z.number(), z.string()], { error: (iss) => message(iss.input) })
    .transform((v, ctx) => {
      const out = parse(v);
      if (out === undefined) {
        ctx.addIssue({ code: 'custom', message: message(v) });
        return z.NEVER;
      }
      if (max !== undefined && out > max.value) {
        ctx.addIssue({ code: 'custom', message: `${max.text}, got ${describeGot(v)}` });
        return z.NEVER;
      }
      return out;
    })
    .meta({ description });
}

/** Node timers hold at most 2^31-1 ms (about 24.8 days); no proxy timer needs more than a day. */
export const MAX_DURATION_MS = 24 * 60 * 60 * 1000;

/** A duration: "250ms", "2s", "1m", "1h", or a number of milliseconds. Output: milliseconds. */
export const duration = unit('a duration like "250ms"', parseDuration, 'A duration such as "250ms", "2s", "1m", or a number of milliseconds; at most 24h.', {
  value: MAX_DURATION_MS,
  text: 'expected a duration of at most 24h (longer ones overflow timers)',
});

/** A size: "64KiB", "1MiB", "512B", or a number of bytes. Output: bytes. */
export const size = unit('a size like "64KiB"', parseSize, 'A size such as "64KiB", "1MiB", or a number of bytes.');

const listenAddress = z.string().refine((s) => parseListen(s) !== undefined, {
  error: (iss) => `expected a listen address like "0.0.0.0:15001", got ${describeGot(iss.input)}`,
});

const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const name = z.string().regex(NAME_RE, {
  error: (iss) => `expected a name of letters, digits, "_", "." or "-" (at most 63 characters), got ${describeGot(iss.input)}`,
});

export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'] as const;
const method = z.string().regex(/^[A-Z]+$/, { error: (iss) => `expected an upper-case HTTP method like "GET", got ${describeGot(iss.input)}` });

const statusCode = z.number().int().min(100).max(599);

// ---------------------------------------------------------------------------------------
// Policies. Each block is built twice: with defaults (the `defaults:` section) and with
// every key optional (a route, which overrides `defaults` key by key).
// ---------------------------------------------------------------------------------------

/**
 * gRPC statuses by Envoy's names, for retry.on and breaker.failOn: they match a grpc-status
 * in a trailers-only response (the response headers), never one in trailers after messages.
 */
export const GRPC_STATUS_ON = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 } as const;
export type GrpcStatusOn = keyof typeof GRPC_STATUS_ON;
const GRPC_ON = Object.keys(GRPC_STATUS_ON) as GrpcStatusOn[];
export const RETRY_ON = ['connect-failure', 'refused-stream', 'reset', 'gateway-error', '5xx', 'retriable-status', ...GRPC_ON] as const;
export const JITTER = ['full', 'equal', 'decorrelated', 'none'] as const;
export const FAIL_ON = ['connect-failure', 'reset', 'timeout', 'gateway-error', '5xx', ...GRPC_ON] as const;
export const UPSTREAM_PROTOCOLS = ['http1', 'h2c', 'h2'] as const;
export const FALLBACK_ON = ['breaker-open', 'timeout', 'upstream-unavailable', '5xx', 'overloaded'] as const;

type Shape = Record<string, z.ZodType>;
type Defaulted<S extends Shape> = z.ZodObject<{ [K in keyof S]: z.ZodDefault<S[K]> }, z.core.$strict>;
type Optional<S extends Shape> = z.ZodObject<{ [K in keyof S]: z.ZodOptional<S[K]> }, z.core.$strict>;

/** The `defaults:` form of a block: every key has its default. */
function defaulted<S extends Shape>(shape: S, defaults: { [K in keyof S]: z.input<S[K]> }): Defaulted<S> {
  const out: Shape = {};
  for (const key of Object.keys(shape)) out[key] = (shape[key] as z.ZodType).default(defaults[key] as never);
  return z.strictObject(out) as unknown as Defaulted<S>;
}

/** The route form of a block: every key optional, so a route overrides `defaults` key by key. */
function optional<S extends Shape>(shape: S): Optional<S> {
  const out: Shape = {};
  for (const key of Object.keys(shape)) out[key] = (shape[key] as z.ZodType).optional();
  return z.strictObject(out) as unknown as Optional<S>;
}

const backoffShape = {
  base: duration,
  max: duration,
  jitter: z.enum(JITTER),
};
const backoffDefaults = { base: 25, max: 250, jitter: 'full' } as const;

const retryAfterShape = { honor: z.boolean(), max: duration };
const retryAfterDefaults = { honor: true, max: 2000 };

const budgetShape = {
  enabled: z.boolean(),
  ratio: z.number().min(0).max(1),
  minPerSecond: z.number().min(0),
  window: duration.refine((ms) => ms >= 1000, { error: 'expected a window of at least 1s' }),
};
const budgetDefaults = { enabled: true, ratio: 0.2, minPerSecond: 10, window: 10_000 };

const retryScalars = {
  attempts: z.number().int().min(0).max(10).meta({ description: 'Retries after the first try; 0 turns retries off.' }),
  perTryTimeout: duration.meta({ description: 'Timeout for each attempt; 0 means only the route deadline applies.' }),
  on: z.array(z.enum(RETRY_ON)),
  statuses: z.array(statusCode).meta({ description: 'Status codes retried when `on` has retriable-status.' }),
  methods: z.array(method),
  idempotencyHeader: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/).transform((s) => s.toLowerCase()),
  bufferBody: size.meta({ description: 'Request bodies up to this size are buffered so they can be replayed.' }),
  grpcMethods: z
    .array(z.string().regex(/^\/[^/]+\/[^/]+$/, { error: (iss) => `expected a gRPC method like "/pkg.Service/Method", got ${describeGot(iss.input)}` }))
    .meta({ description: 'gRPC calls retried (any HTTP method); empty means every gRPC method of the route.' }),
};
const retryScalarDefaults = {
  attempts: 2,
  perTryTimeout: 0,
  on: ['connect-failure', 'refused-stream', 'reset', 'gateway-error'] as RetryOn[],
  statuses: [] as number[],
  methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'],
  idempotencyHeader: 'idempotency-key',
  bufferBody: 65536,
  grpcMethods: [] as string[],
};

const retryFull = defaulted(retryScalars, retryScalarDefaults).extend({
  backoff: defaulted(backoffShape, backoffDefaults).prefault({}),
  retryAfter: defaulted(retryAfterShape, retryAfterDefaults).prefault({}),
  budget: defaulted(budgetShape, budgetDefaults).prefault({}),
});
const retryPartial = optional(retryScalars).extend({
  backoff: optional(backoffShape).optional(),
  retryAfter: optional(retryAfterShape).optional(),
  budget: optional(budgetShape).optional(),
});

const failureRate = z.strictObject({
  threshold: z.number().gt(0).lt(1).meta({ description: 'Open when failures exceed this share of requests in the window (0 < t < 1).' }),
  window: duration.refine((ms) => ms >= 1000, { error: 'expected a window of at least 1s' }).default(10_000),
  minRequests: z.number().int().min(1).default(20),
});

const halfOpenAfter = z.union([duration, z.strictObject({ base: duration, max: duration })], {
  error: () => 'expected a duration like "10s" or { base, max }',
});

const failOn = z.array(
  z.union([z.enum(FAIL_ON), statusCode], {
    error: (iss) => `expected one of ${FAIL_ON.join(' | ')} or a status code, got ${describeGot(iss.input)}`,
  }),
);

const breakerShape = {
  enabled: z.boolean(),
  halfOpenAfter,
  failOn,
  probeTimeout: duration
    .refine((ms) => ms > 0, { message: 'must be greater than 0' })
    .meta({ description: 'Longest a half-open probe may take, whatever the route timeouts; a probe that runs out is a failure.' }),
};
const breakerDefaults = {
  enabled: true,
  halfOpenAfter: 10_000,
  probeTimeout: 5000,
  failOn: ['connect-failure', 'reset', 'timeout', 'gateway-error'] as FailOn[],
};
// The trip condition has no schema default: when neither is set, consecutiveFailures: 5
// applies (load.ts), so that a route choosing failureRate is not also handed the default.
const breakerTrip = {
  consecutiveFailures: z.number().int().min(1).optional().meta({ description: 'Open after this many failures in a row (default 5).' }),
  failureRate: failureRate.optional(),
};
const breakerFull = defaulted(breakerShape, breakerDefaults).extend(breakerTrip);
const breakerPartial = optional(breakerShape).extend(breakerTrip).extend({
  name: name.optional().meta({ description: 'Share one breaker between the routes that give the same name.' }),
});

const concurrencyShape = { max: z.number().int().min(1), queue: z.number().int().min(0) };
const concurrencyDefaults = { max: 1024, queue: 0 };

const headerName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: (iss) => `expected a header name (RFC 9110 token), got ${describeGot(iss.input)}` })
  .transform((s) => s.toLowerCase());

// The stale-if-error cache (policies/stale-cache.ts): responses kept per route, served
// instead of the static fallback when a trigger fires. Present means enabled.
const staleIfErrorShape = {
  maxAge: duration
    .refine((ms) => ms > 0, { error: 'expected a maxAge above 0' })
    .meta({ description: 'Oldest entry (by its Age) served; an upstream stale-if-error=N lowers it for that entry to its freshness lifetime plus N.' }),
  maxEntries: z.number().int().min(1).max(1_000_000).meta({ description: 'Most entries kept by the route; the least recently used goes first.' }),
  maxBytes: size
    .refine((b) => b >= 1024 && b <= 4 * 1024 ** 3, { error: 'expected a size from 1KiB to 4GiB' })
    .meta({ description: 'Most bytes kept by the route (bodies, header names and values, keys); the least recently used goes first.' }),
  maxEntryBytes: size.meta({ description: 'Largest body stored; larger ones stream through and are not kept.' }),
  vary: z.array(headerName).meta({ description: 'Request headers that are part of the key; a response whose Vary names another header (or *) is not stored.' }),
};
const staleIfErrorDefaults = { maxAge: 300_000, maxEntries: 1000, maxBytes: 32 * 1024 * 1024, maxEntryBytes: 1024 * 1024, vary: ['accept', 'accept-encoding'] };

const fallbackSchema = z.strictObject({
  on: z.array(z.enum(FALLBACK_ON)).default(['breaker-open', 'timeout', 'upstream-unavailable']),
  // A final response: an informational status (1xx) would leave the client waiting, or look like a switch.
  status: z.number().int().min(200).max(599).default(200),
  headers: z
    .record(
      z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/),
      // RFC 9110 field-value characters, as Node checks them when the header is written:
      // a value that passes here can never make the fallback throw at run time.
      z.string().regex(/^[\t\x20-\x7e\x80-\xff]*$/, { error: 'expected a header value of visible characters, spaces and tabs (no CR, LF, NUL or other control characters)' }),
      { error: (iss) => (iss.code === 'invalid_key' ? 'expected a header name (RFC 9110 token)' : undefined) },
    )
    .default({}),
  body: z.string().optional(),
  bodyFile: z.string().optional(),
  grpc: z
    .strictObject({
      status: z.number().int().min(0).max(16).meta({ description: 'The grpc-status of the fallback (0 OK to 16 UNAUTHENTICATED).' }),
      message: z.string().default('').meta({ description: 'The grpc-message (sent percent-encoded).' }),
    })
    .optional()
    .meta({ description: 'The fallback for gRPC requests (content-type application/grpc*): a trailers-only response with this status, instead of status/headers/body.' }),
  staleIfError: defaulted(staleIfErrorShape, staleIfErrorDefaults)
    .optional()
    .meta({ description: 'Serve the last good response (GET and HEAD) when a trigger fires, before the static fallback. With it, the static response applies only when body or bodyFile is set.' }),
});

const websocketShape = {
  handshakeTimeout: duration.refine((ms) => ms > 0, { error: 'expected a handshake timeout above 0' }),
  idleTimeout: duration,
  maxLifetime: duration,
  maxConnections: z.number().int().min(1),
  ping: duration,
  maxBufferedBytes: size
    .refine((n) => n >= 1024 && n <= 256 * 1024 * 1024, { error: 'expected a size from 1KiB to 256MiB' })
    .meta({ description: 'Largest WebSocket message, and most bytes queued toward one leg before the next message; past it the connection is closed with 1009.' }),
};
const websocketDefaults = { handshakeTimeout: 5000, idleTimeout: 0, maxLifetime: 0, maxConnections: 10_000, ping: 0, maxBufferedBytes: 1024 * 1024 };

// Health thresholds: a route's error ratio over a rolling window (at most the 5 minutes the
// stats ring keeps) sets its level in /health and on the status page; never liveness.
const errorRatioShape = {
  warning: z.number().min(0).max(1),
  critical: z.number().min(0).max(1),
  window: duration.refine((ms) => ms >= 1000 && ms <= 300_000, { error: 'expected a window between 1s and 5m' }),
  minRequests: z.number().int().min(1),
};
const errorRatioDefaults = { warning: 0.05, critical: 0.25, window: 60_000, minRequests: 20 };

// Dead-letter journal (opt-in per route): non-idempotent requests that end in a proxy-made
// failure are recorded in an append-only journal under `dir`, for inspection and replay.
export const DEAD_LETTER_ON = ['breaker-open', 'overloaded', 'upstream-unavailable', 'timeout'] as const;
export const DEFAULT_DEAD_LETTER_DIR = '/var/lib/outrigger/dead-letters';
const deadLetterShape = {
  enabled: z.boolean().meta({ description: 'Record non-idempotent requests that end in a proxy-made failure (see deadLetter.on).' }),
  dir: z.string().min(1).meta({ description: 'Directory of the journal (one file per route); relative to the config file. Must exist and be writable when enabled.' }),
  maxEntries: z.number().int().min(1).max(10_000_000).meta({ description: 'Entries kept per route; past it the oldest are evicted.' }),
  maxBytes: size.refine((n) => n >= 1024, { error: 'expected a size of at least 1KiB' }).meta({ description: 'Bytes of entries kept per route (also held in memory); past it the oldest are evicted.' }),
  maxBodyBytes: size.meta({ description: 'Largest request body kept in an entry; larger or streamed bodies are flagged bodyKept: false.' }),
  on: z.array(z.enum(DEAD_LETTER_ON)).meta({ description: 'Which proxy-made failures are recorded.' }),
  redactHeaders: z.array(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/).transform((s) => s.toLowerCase())).meta({ description: 'Headers left out of entries, besides Authorization, Cookie and Proxy-Authorization.' }),
  syncInterval: duration.meta({ description: 'Longest time between an append and the fsync that acknowledges it; 0 = fsync after every write.' }),
};
const deadLetterDefaults = {
  enabled: false,
  dir: DEFAULT_DEAD_LETTER_DIR,
  maxEntries: 10_000,
  maxBytes: 64 * 1024 * 1024,
  maxBodyBytes: 64 * 1024,
  on: ['breaker-open', 'overloaded', 'upstream-unavailable', 'timeout'] as DeadLetterOn[],
  redactHeaders: [] as string[],
  syncInterval: 100,
};

const upgradeToken = z.string().regex(/^[A-Za-z0-9._-]+$/).transform((s) => s.toLowerCase());

export const defaultsSchema = z.strictObject({
  timeout: duration.default(15_000).meta({ description: 'Deadline from request start to response headers, retries and backoff included; 0 = none.' }),
  bodyTimeout: duration.default(30_000).meta({ description: 'Longest idle gap while streaming the response body; 0 = none.' }),
  requestTimeout: duration.default(60_000).meta({ description: 'Longest time to receive the whole request body from the client (408 after it); 0 = none. `timeout` starts when it ends.' }),
  retry: retryFull.prefault({}),
  breaker: breakerFull.prefault({}),
  concurrency: defaulted(concurrencyShape, concurrencyDefaults).prefault({}),
  fallback: fallbackSchema.optional(),
  websocket: defaulted(websocketShape, websocketDefaults).prefault({}),
  upgrades: z.array(upgradeToken).default(['websocket']),
  health: z.strictObject({ errorRatio: defaulted(errorRatioShape, errorRatioDefaults).prefault({}) }).prefault({}),
  deadLetter: defaulted(deadLetterShape, deadLetterDefaults).prefault({}),
});

// The policy keys a route, a preset and (with their defaults) the `defaults:` block take.
const routePolicies = {
  timeout: duration.optional(),
  bodyTimeout: duration.optional(),
  requestTimeout: duration.optional(),
  retry: retryPartial.optional(),
  breaker: breakerPartial.optional(),
  concurrency: optional(concurrencyShape).optional(),
  fallback: fallbackSchema.optional(),
  websocket: optional(websocketShape).optional(),
  upgrades: z.array(upgradeToken).optional(),
  health: z.strictObject({ errorRatio: optional(errorRatioShape).optional() }).optional(),
  deadLetter: optional(deadLetterShape).optional(),
};

/** The policy keys with none defaulted: what a layer (defaults, a preset, a route) sets itself. */
export const policyLayerSchema = z.strictObject(routePolicies);

const presetList = z.array(name).meta({ description: 'Presets to apply, in order: each overrides `defaults` and the presets before it, key by key; the keys set here override them all.' });

// A named preset: the route policy keys plus `critical`, and `use` to build on other presets.
// Merge order for a route: built-in defaults, `defaults`, each preset of `use` in order
// (a preset's own `use` list first), then the route's own keys (load.ts, presets.ts).
export const presetSchema = z
  .strictObject({
    use: presetList.optional(),
    critical: z.boolean().optional().meta({ description: "Mark the routes that use this preset critical (see a route's `critical`)." }),
    ...routePolicies,
  })
  .meta({ description: 'A named set of policy keys, applied to a route with `use: [name]`.' });

const headerMatch = z.union(
  [
    z.string(),
    z.strictObject({ exact: z.string() }),
    z.strictObject({ prefix: z.string() }),
    z.strictObject({ regex: z.string() }),
    z.strictObject({ present: z.boolean() }),
  ],
  { error: () => 'expected a string, or one of { exact }, { prefix }, { regex }, { present }' },
);

export const matchSchema = z.strictObject({
  host: z.string().min(1).optional().meta({ description: 'Host to match, port ignored unless given; "*.example" matches subdomains; "*" matches any.' }),
  pathPrefix: z.string().startsWith('/').optional(),
  path: z.string().startsWith('/').optional(),
  pathRegex: z.string().optional(),
  methods: z.array(method).optional(),
  headers: z.record(z.string(), headerMatch).optional(),
});

export const routeSchema = z.strictObject({
  name,
  match: matchSchema.prefault({}),
  upstream: name,
  rewritePrefix: z.string().startsWith('/').optional(),
  preserveHost: z.boolean().default(false),
  grpc: z.boolean().default(false).meta({ description: 'The route carries gRPC: its upstream must speak HTTP/2 (protocol h2c or h2), checked at load.' }),
  critical: z.boolean().optional().meta({ description: "List this route's breaker in /health criticalOpen while not closed (default false; a preset may set it)." }),
  use: presetList.default([]),
  ...routePolicies,
});

export const upstreamSchema = z.strictObject({
  endpoints: z.array(z.string()).min(1, { error: 'expected at least one endpoint' }),
  connectTimeout: duration.default(1000),
  maxConnections: z.number().int().min(1).default(128),
  keepAliveTimeout: duration.refine((ms) => ms >= 1, { message: 'expected a keep-alive timeout of at least 1ms' }).default(4000),
  protocol: z
    .enum(UPSTREAM_PROTOCOLS)
    .default('http1')
    .meta({ description: 'http1 (undici pools), h2c (cleartext HTTP/2 with prior knowledge) or h2 (HTTP/2 over TLS with ALPN, https endpoints only); h2c and h2 use one node:http2 session per endpoint.' }),
});

export const ESCAPED_SLASHES = ['keep', 'reject', 'unescape', 'redirect'] as const;

// The HTTP/1.1 edge: how request targets are normalized before routing and the limits on
// what a client may send. The limits are read when the listener starts (a reload that
// changes them logs that a restart is needed); the path options apply on reload.
export const httpSchema = z
  .strictObject({
    normalizePath: z.boolean().default(true).meta({ description: 'RFC 3986 normalization of the path before routing: dot segments removed (also percent-encoded ones), unreserved characters decoded, other percent-encodings upper-cased.' }),
    mergeSlashes: z.boolean().default(true).meta({ description: 'Merge runs of "/" in the path into one.' }),
    escapedSlashes: z.enum(ESCAPED_SLASHES).default('reject').meta({ description: 'What to do with %2F and %5C in the path: keep, reject (400), unescape, or redirect (307) to the unescaped path.' }),
    maxHeaderBytes: size.refine((b) => b >= 1024, { error: 'expected at least 1KiB' }).default(16_384).meta({ description: 'Largest request header block (request line included); over it: 431 and the connection is closed.' }),
    maxHeaders: z.number().int().min(1).max(10_000).default(100).meta({ description: 'Most header lines in a request; over it: 431 and the connection is closed.' }),
    maxTargetBytes: size.refine((b) => b >= 16, { error: 'expected at least 16B' }).default(8192).meta({ description: 'Longest request target; over it: 414 and the connection is closed.' }),
    via: z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, { error: 'expected a token such as "outrigger"' }).default('outrigger').meta({ description: 'Pseudonym in the Via header the proxy adds; a request whose Via already has it is refused with 508 (a loop).' }),
  })
  .meta({ description: 'The HTTP/1.1 edge: path normalization and request limits.' });

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().meta({ description: 'Ignored; lets editors find the JSON Schema.' }),
    listen: listenAddress.default('0.0.0.0:15001'),
    admin: z.strictObject({ listen: listenAddress.default('127.0.0.1:15000') }).prefault({}),
    status: z
      .strictObject({ listen: listenAddress })
      .optional()
      .meta({ description: 'Read-only probe listener (/livez, /readyz, /health), for kubelet probes while admin stays on loopback. Absent: no status listener.' }),
    metrics: z.strictObject({ listen: listenAddress.default('0.0.0.0:15090') }).prefault({}),
    log: z
      .strictObject({
        level: z.enum(LOG_LEVELS).default('info'),
        accessLog: z
          .union([z.boolean(), z.strictObject({ sample: z.number().min(0).max(1) })], {
            error: () => 'expected true, false or { sample: 0..1 }',
          })
          .default(false),
      })
      .prefault({}),
    drain: z.strictObject({ delay: duration.default(5000), timeout: duration.default(25_000) }).prefault({}),
    reload: z.strictObject({ pollInterval: duration.default(5000) }).prefault({}),
    events: z
      .strictObject({
        capacity: z.number().int().min(1).max(100_000).default(1000).meta({ description: 'Events kept in memory for /events and the status page.' }),
        coalesce: duration.default(10_000).meta({ description: 'Repeats of one kind on one route within this time merge into one event with a count.' }),
      })
      .prefault({}),
    flapping: z
      .strictObject({
        interval: duration.refine((ms) => ms >= 10, { error: 'expected an interval of at least 10ms' }).default(10_000).meta({ description: 'How often each breaker state is sampled; 21 samples make the history.' }),
        high: z.number().min(0).max(100).default(30).meta({ description: 'Percent state change at or above which a breaker starts flapping.' }),
        low: z.number().min(0).max(100).default(15).meta({ description: 'Percent state change at or below which a flapping breaker stops flapping.' }),
        damp: z.boolean().default(false).meta({ description: 'Multiply halfOpenAfter by dampFactor while a breaker flaps.' }),
        dampFactor: z.number().min(1).max(100).default(4),
      })
      .prefault({}),
    http: httpSchema.prefault({}),
    http2: z
      .strictObject({
        maxConcurrentStreams: z.number().int().min(1).max(10_000).default(100).meta({ description: 'SETTINGS_MAX_CONCURRENT_STREAMS the proxy port announces to HTTP/2 (h2c) clients. The header list size is http.maxHeaderBytes.' }),
      })
      .prefault({})
      .meta({ description: 'Inbound HTTP/2 (h2c with prior knowledge, on the proxy port): its limits. Read when the listener starts.' }),
    upstreams: z.record(name, upstreamSchema).default({}),
    defaults: defaultsSchema.prefault({}),
    presets: z
      .record(name, presetSchema)
      .default({})
      .meta({ description: 'Named policy presets that routes apply with `use`; the built-in ones (transient, critical, background, no-retry) cannot be redefined.' }),
    routes: z.array(routeSchema).default([]),
  })
  .meta({ title: 'Outrigger config', description: 'Outrigger resilience sidecar proxy configuration.' });

export type RawConfig = z.output<typeof configSchema>;
export type RawRoute = z.output<typeof routeSchema>;
export type Defaults = z.output<typeof defaultsSchema>;
export type PolicyLayer = z.output<typeof policyLayerSchema>;
export type PresetConfig = z.output<typeof presetSchema>;
export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type RetryOn = (typeof RETRY_ON)[number];
export type FailOn = (typeof FAIL_ON)[number];
export type FallbackOn = (typeof FALLBACK_ON)[number];
export type Jitter = (typeof JITTER)[number];
export type HttpConfig = z.output<typeof httpSchema>;
export type FallbackConfig = z.output<typeof fallbackSchema>;
export type StaleIfErrorConfig = NonNullable<FallbackConfig['staleIfError']>;
export type DeadLetterOn = (typeof DEAD_LETTER_ON)[number];
