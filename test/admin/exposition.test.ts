// The /metrics text Outrigger renders itself (src/admin/exposition.ts and the RouteFamily
// classes of src/admin/metrics.ts) against what prom-client prints for the same state, and
// the scrape at 1,000 routes letting the event loop run between its chunks.
import { spawnSync } from 'node:child_process';
import { createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { DURATION_BUCKETS, Metrics, OTHER_METHOD, PROXY_CODES, UNMATCHED_CODES, UNMATCHED_ROUTE, RETRY_REASONS, TIMEOUT_KINDS, type RouteMetrics } from '../../src/admin/metrics.js';
import { createMetricsHandler } from '../../src/admin/server.js';
import { ATTEMPT_OUTCOMES, type AttemptOutcome } from '../../src/exchange/outcome.js';
import { FALLBACK_ON, HTTP_METHODS, type FallbackOn } from '../../src/config/schema.js';
import { CLOSE_REASONS, UPGRADE_OUTCOMES } from '../../src/proxy/websocket.js';

interface Parsed {
  /** Family name → HELP text and TYPE, in the order the families appear. */
  families: Map<string, { help: string; type: string }>;
  /** `name{k="v",...}` with the labels sorted and unescaped → the value as printed. */
  samples: Map<string, string>;
}

const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'];

/**
 * A strict reader of the text format: every sample belongs to the family whose TYPE line
 * came last (families contiguous), no series twice, label values unescaped. Throws on the
 * first violation (plain checks: expect() per line is slow at 130k lines).
 */
function parse(text: string): Parsed {
  const families = new Map<string, { help: string; type: string }>();
  const samples = new Map<string, string>();
  let current: string | null = null;
  let help: string | null = null;
  const fail = (why: string): never => {
    throw new Error(`not valid exposition text: ${why}`);
  };
  if (!text.endsWith('\n')) fail('no final line feed');
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    let m = /^# HELP (\S+) (.*)$/.exec(line);
    if (m) {
      if (families.has(m[1] as string)) fail(`${m[1]} appears twice`);
      current = m[1] as string;
      help = m[2] as string;
      continue;
    }
    m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) {
      if (m[1] !== current) fail(`TYPE ${m[1]} not right after its HELP`);
      families.set(m[1] as string, { help: help as string, type: m[2] as string });
      continue;
    }
    m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) return fail(`not a sample line: ${line}`);
    const [, name, labelText = '', value] = m as unknown as [string, string, string | undefined, string];
    const type = current === null ? undefined : families.get(current)?.type;
    const own = name === current || ((type === 'histogram' || type === 'summary') && HISTOGRAM_SUFFIXES.some((x) => name === `${current}${x}`));
    if (!own) fail(`${name} outside its family (the last TYPE was ${current})`);
    const labels: Array<[string, string]> = [];
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
    let pos = 0;
    while (pos < labelText.length) {
      re.lastIndex = pos;
      const l = re.exec(labelText);
      if (!l) return fail(`bad labels: ${line}`);
      labels.push([l[1] as string, (l[2] as string).replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))]);
      pos = re.lastIndex;
    }
    labels.sort((x, y) => (x[0] < y[0] ? -1 : 1));
    const key = `${name}{${labels.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(',')}}`;
    if (samples.has(key)) fail(`${key} twice`);
    samples.set(key, value);
  }
  return { families, samples };
}

/** The part of a parsed text that belongs to the named families. */
function only(p: Parsed, names: ReadonlySet<string>): Parsed {
  const familyOf = (series: string): string => {
    const name = series.slice(0, series.indexOf('{'));
    if (names.has(name)) return name;
    const base = HISTOGRAM_SUFFIXES.reduce((n, s) => (n.endsWith(s) ? n.slice(0, -s.length) : n), name);
    return base;
  };
  return {
    families: new Map([...p.families].filter(([n]) => names.has(n))),
    samples: new Map([...p.samples].filter(([s]) => names.has(familyOf(s)))),
  };
}

/**
 * Without the process and Node.js series: their values move between two reads, and some of
 * their series come and go (active handles by type).
 */
function stable(p: Parsed): Map<string, string> {
  return new Map([...p.samples].filter(([s]) => !s.startsWith('process_') && !s.startsWith('nodejs_')));
}

const METHOD_SET = new Set<string>(HTTP_METHODS);

/**
 * The per-route families the way they were before Outrigger rendered them: real prom-client
 * counters, gauges and a histogram, fed the same calls as RouteMetrics (the oracle).
 */
class Oracle {
  readonly registry = new Registry();
  /** Route names seen: a histogram's zero() would reset a series that has data. */
  readonly seen = new Set<string>();
  private readonly decl = (m: Metrics, field: keyof Metrics): { name: string; help: string; labelNames: string[]; registers: Registry[] } => {
    const d = m[field] as unknown as { name: string; help: string; labelNames: string[] };
    return { name: d.name, help: d.help, labelNames: [...d.labelNames], registers: [this.registry] };
  };
  readonly requests: Counter<string>;
  readonly duration: Histogram<string>;
  readonly attempts: Counter<string>;
  readonly retries: Counter<string>;
  readonly exhausted: Counter<string>;
  readonly fallbacks: Counter<string>;
  readonly timeouts: Counter<string>;
  readonly overload: Counter<string>;
  readonly internalErrors: Counter<string>;
  readonly truncated: Counter<string>;
  readonly grpc: Counter<string>;
  readonly stale: Counter<string>;
  readonly inflight: Gauge<string>;
  readonly wsConnections: Gauge<string>;
  readonly wsUpgrades: Counter<string>;
  readonly wsClosed: Counter<string>;

  constructor(m: Metrics) {
    this.requests = new Counter(this.decl(m, 'requests'));
    this.duration = new Histogram({ ...this.decl(m, 'duration'), buckets: DURATION_BUCKETS });
    this.attempts = new Counter(this.decl(m, 'attempts'));
    this.retries = new Counter(this.decl(m, 'retries'));
    this.exhausted = new Counter(this.decl(m, 'budgetExhausted'));
    this.fallbacks = new Counter(this.decl(m, 'fallbacks'));
    this.timeouts = new Counter(this.decl(m, 'timeouts'));
    this.overload = new Counter(this.decl(m, 'overload'));
    this.internalErrors = new Counter(this.decl(m, 'internalErrors'));
    this.truncated = new Counter(this.decl(m, 'truncated'));
    this.grpc = new Counter(this.decl(m, 'grpcResponses'));
    this.stale = new Counter(this.decl(m, 'staleServed'));
    this.inflight = new Gauge(this.decl(m, 'inflight'));
    this.wsConnections = new Gauge(this.decl(m, 'wsConnections'));
    this.wsUpgrades = new Counter(this.decl(m, 'wsUpgrades'));
    this.wsClosed = new Counter(this.decl(m, 'wsClosed'));
  }

  names(): Set<string> {
    return new Set(this.registry.getMetricsAsArray().map((x) => (x as unknown as { name: string }).name));
  }
}

/** A RouteMetrics and the oracle's view of the same route, driven together. */
class Route {
  readonly rm: RouteMetrics;
  constructor(
    m: Metrics,
    private readonly o: Oracle,
    readonly route: string,
    readonly upstream: string | null,
  ) {
    this.rm = m.forRoute(route, upstream);
    const r = { route };
    for (const c of [o.exhausted, o.overload, o.internalErrors, o.truncated]) c.inc(r, 0);
    for (const reason of RETRY_REASONS) o.retries.inc({ route, reason }, 0);
    for (const trigger of FALLBACK_ON) o.fallbacks.inc({ route, trigger }, 0);
    for (const kind of TIMEOUT_KINDS) o.timeouts.inc({ route, kind }, 0);
    if (upstream !== null) for (const outcome of ATTEMPT_OUTCOMES) o.attempts.inc({ route, upstream, outcome }, 0);
    if (!o.seen.has(route)) o.duration.zero(r);
    o.seen.add(route);
    o.inflight.inc(r, 0);
  }
  zeroCodes(methods: readonly string[] | null, codes: readonly number[]): void {
    this.rm.zeroCodes(methods, codes);
    for (const mth of methods ?? [...HTTP_METHODS, OTHER_METHOD]) for (const code of codes) this.o.requests.inc({ route: this.route, method: METHOD_SET.has(mth) ? mth : OTHER_METHOD, code: String(code) }, 0);
  }
  request(method: string, code: number, seconds: number): void {
    this.rm.request(method, code);
    this.rm.observeDuration(seconds);
    this.o.requests.inc({ route: this.route, method: METHOD_SET.has(method) ? method : OTHER_METHOD, code: String(code) });
    this.o.duration.observe({ route: this.route }, seconds);
  }
  attempt(outcome: AttemptOutcome): void {
    this.rm.attempt(outcome);
    if (this.upstream !== null) this.o.attempts.inc({ route: this.route, upstream: this.upstream, outcome });
  }
  inflight(delta: number): void {
    this.rm.inflight += delta;
    this.o.inflight.inc({ route: this.route }, delta);
  }
  retry(reason: (typeof RETRY_REASONS)[number]): void {
    this.rm.retry(reason);
    this.o.retries.inc({ route: this.route, reason });
  }
  fallback(trigger: FallbackOn): void {
    this.rm.fallback(trigger);
    this.o.fallbacks.inc({ route: this.route, trigger });
  }
  timeout(kind: (typeof TIMEOUT_KINDS)[number]): void {
    this.rm.timeout(kind);
    this.o.timeouts.inc({ route: this.route, kind });
  }
  exhausted(): void {
    this.rm.budgetExhausted.inc();
    this.o.exhausted.inc({ route: this.route });
  }
  overload(): void {
    this.rm.overload.inc();
    this.o.overload.inc({ route: this.route });
  }
  truncated(): void {
    this.rm.truncated.inc();
    this.o.truncated.inc({ route: this.route });
  }
  internalError(): void {
    this.rm.internalError('a test bug');
    this.o.internalErrors.inc({ route: this.route });
  }
  zeroGrpc(): void {
    this.rm.zeroGrpc();
    for (let c = 0; c <= 16; c++) this.o.grpc.inc({ route: this.route, grpc_status: String(c) }, 0);
  }
  grpc(code: number): void {
    this.rm.grpcResponse(code);
    this.o.grpc.inc({ route: this.route, grpc_status: String(Number.isInteger(code) && code >= 0 && code <= 16 ? code : 2) });
  }
  zeroStale(): void {
    this.rm.zeroStale();
    this.o.stale.inc({ route: this.route }, 0);
  }
  stale(): void {
    this.rm.staleServed();
    this.o.stale.inc({ route: this.route });
  }
  zeroUpgrades(): void {
    this.rm.zeroUpgrades(UPGRADE_OUTCOMES, CLOSE_REASONS);
    for (const outcome of UPGRADE_OUTCOMES) this.o.wsUpgrades.inc({ route: this.route, outcome }, 0);
    for (const reason of CLOSE_REASONS) this.o.wsClosed.inc({ route: this.route, reason }, 0);
    this.o.wsConnections.inc({ route: this.route }, 0);
  }
  wsUpgrade(outcome: string): void {
    this.rm.wsUpgrade(outcome);
    this.o.wsUpgrades.inc({ route: this.route, outcome });
  }
  wsOpened(): void {
    this.rm.wsOpened();
    this.o.wsConnections.inc({ route: this.route });
  }
  wsClosed(reason: string): void {
    this.rm.wsClosed(reason);
    this.o.wsConnections.dec({ route: this.route });
    this.o.wsClosed.inc({ route: this.route, reason });
  }
}

/** Several routes, as a config load would set them up, with the non-route series moved too. */
function setUp(withDefaults: boolean): { m: Metrics; o: Oracle; routes: Route[] } {
  const m = new Metrics(withDefaults);
  const o = new Oracle(m);
  const api = new Route(m, o, 'api', 'backend');
  const ws = new Route(m, o, 'ws', 'backend');
  const grpc = new Route(m, o, 'grpc.svc', 'grpc-up');
  // Route names come from the config (a restricted set), but the text must stay valid for any.
  const odd = new Route(m, o, 'we"ird\\na\nme', 'up "quoted"');
  const unmatched = new Route(m, o, UNMATCHED_ROUTE, null);
  api.zeroCodes(null, [...PROXY_CODES, 529]);
  ws.zeroCodes(['GET'], PROXY_CODES);
  grpc.zeroCodes(['POST'], PROXY_CODES);
  odd.zeroCodes(['GET', 'POST'], PROXY_CODES);
  unmatched.zeroCodes(null, UNMATCHED_CODES);
  ws.zeroUpgrades();
  grpc.zeroGrpc();
  api.zeroStale();
  const b = m.forBreaker('api');
  m.forBreaker('grpc.svc');
  b.transition('open');
  b.rejections.inc();
  m.breakerCritical.labels('api').set(1);
  m.reloads.labels('success').inc();
  m.deadLetters.labels('api', 'timeout').inc(0);
  m.staleCacheBytes.set(123);
  return { m, o, routes: [api, ws, grpc, odd, unmatched] };
}

/** One round of every kind of traffic the per-route families count. */
function traffic(routes: Route[], round: number): void {
  const [api, ws, grpc, odd, unmatched] = routes as [Route, Route, Route, Route, Route];
  // Durations that are exact in binary, so sums do not depend on the order of additions.
  const seconds = [0.0009765625, 0.0025, 0.005, 0.25, 0.5, 2, 64];
  for (const [i, method] of ['GET', 'POST', 'PATCH', 'PURGE', 'GET'].entries()) api.request(method, 200 + (i % 2) * 4, seconds[(i + round) % seconds.length] as number);
  api.request('GET', 503, 0.125);
  api.request('DELETE', 529, 1);
  api.attempt('success');
  api.attempt('http_5xx');
  api.attempt('connect_failure');
  api.retry('gateway_error');
  api.retry('connect_failure');
  api.fallback('breaker-open');
  api.fallback('5xx');
  api.timeout('total');
  api.timeout('per_try');
  api.exhausted();
  api.overload();
  api.stale();
  api.inflight(round === 0 ? 3 : -1);
  ws.request('GET', 101, 0.5);
  ws.wsUpgrade('accepted');
  ws.wsUpgrade('upstream_refused');
  ws.wsOpened();
  ws.wsOpened();
  ws.wsClosed('client');
  ws.wsClosed('buffer_overflow');
  ws.wsClosed('client');
  ws.truncated();
  grpc.request('POST', 200, 0.0025);
  grpc.grpc(0);
  grpc.grpc(14);
  grpc.grpc(99);
  grpc.attempt('reset');
  odd.request('GET', 418, 10);
  odd.timeout('body');
  odd.internalError();
  odd.wsUpgrade('accepted'); // a series nobody zeroed
  odd.wsOpened();
  unmatched.request('GET', 404, 0.001);
  unmatched.request('TRACE', 400, 0.001);
  unmatched.request('OPTIONS', 499, 30);
}

function perRoute(o: Oracle, p: Parsed): Parsed {
  return only(p, o.names());
}

describe('the /metrics text Outrigger renders', () => {
  it('is what prom-client prints for the same state, byte for byte, before and after traffic of every kind', async () => {
    const { m, o, routes } = setUp(false);
    const check = async (): Promise<void> => {
      const text = await m.text();
      expect(text).toBe(await m.registry.metrics());
      // ... and the per-route families match prom-client's own counters, gauges and histogram.
      const ours = perRoute(o, parse(text));
      const theirs = parse(await o.registry.metrics());
      expect(ours.families).toEqual(theirs.families);
      expect(ours.samples).toEqual(theirs.samples);
    };
    await check();
    traffic(routes, 0);
    await check();
    // A second scrape of unchanged numbers reuses what the first rendered.
    await check();
    traffic(routes, 1);
    // A reload that moved a route to another upstream: one more RouteMetrics for the name,
    // whose series add to the first one's (attempts: one series set per upstream).
    const moved = new Route(m, o, 'api', 'backend-v2');
    moved.zeroCodes(null, PROXY_CODES);
    moved.request('GET', 200, 0.5);
    moved.request('GET', 202, 0.25);
    moved.attempt('success');
    moved.retry('reset');
    moved.inflight(1);
    await check();
    // A route added later renders too.
    const late = new Route(m, o, 'late', 'backend');
    late.request('HEAD', 304, 0.005);
    await check();
  });

  it('has the same families, HELP, TYPE and series as prom-client with the default metrics on', async () => {
    const { m, o, routes } = setUp(true);
    traffic(routes, 0);
    await m.text();
    traffic(routes, 1);
    const ours = parse(await m.text());
    const theirs = parse(await m.registry.metrics());
    expect([...ours.families]).toEqual([...theirs.families]);
    expect(stable(ours)).toEqual(stable(theirs));
    expect(ours.samples.size).toBeGreaterThan(stable(ours).size);
    const route = perRoute(o, ours);
    const oracle = parse(await o.registry.metrics());
    expect(route.samples).toEqual(oracle.samples);
  });

  const havePromtool = spawnSync('promtool', ['--version']).status === 0;
  it.skipIf(!havePromtool)('passes promtool check metrics, odd label values included', async () => {
    const { m, routes } = setUp(true);
    traffic(routes, 0);
    const r = spawnSync('promtool', ['check', 'metrics'], { input: await m.text(), encoding: 'utf8', timeout: 30_000 });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });
});

/** 1,000 routes set up as route-scale's config would (each with a breaker and WebSocket series). */
function thousandRoutes(): Metrics {
  const m = new Metrics(true);
  for (let i = 0; i < 1000; i++) {
    const rm = m.forRoute(`r${i}`, 'app');
    rm.zeroCodes(null, [...PROXY_CODES, 503]);
    rm.zeroUpgrades(UPGRADE_OUTCOMES, CLOSE_REASONS);
    m.forBreaker(`r${i}`);
    m.breakerCritical.labels(`r${i}`).set(0);
  }
  m.forRoute(UNMATCHED_ROUTE, null).zeroCodes(null, UNMATCHED_CODES);
  return m;
}

describe('a scrape at 1,000 routes', () => {
  it('lets the event loop run between its chunks, first scrape and later ones', async () => {
    const m = thousandRoutes();
    for (const round of [0, 1]) {
      const events: string[] = [];
      let chunks = 0;
      let turnedSinceLastChunk = true;
      let everyGapTurned = true;
      setImmediate(() => events.push('scheduled at the start ran'));
      await m.scrape(() => {
        chunks++;
        if (!turnedSinceLastChunk) everyGapTurned = false;
        turnedSinceLastChunk = false;
        // Runs before the next chunk only if the scrape lets the event loop turn in between.
        setImmediate(() => (turnedSinceLastChunk = true));
      });
      events.push('scrape resolved');
      expect(events, `round ${round}`).toEqual(['scheduled at the start ran', 'scrape resolved']);
      expect(chunks, `round ${round}`).toBeGreaterThan(10);
      expect(everyGapTurned, `round ${round}: the event loop turned between every two chunks`).toBe(true);
      // Traffic on every route, so the second round re-renders.
      for (let i = 0; i < 1000; i++) m.forRoute(`r${i}`, 'app').request('GET', 200);
    }
  });

  it('over HTTP, lets the process answer a request that came in after it started, before its last chunk', async () => {
    const m = thousandRoutes();
    const other = await listen(createServer((_req, res) => res.end('ok')));
    const handler = createMetricsHandler(m);
    let answered: Promise<boolean> = Promise.resolve(false);
    let ended = false;
    const metricsServer = await listen(
      createServer((req, res) => {
        // Sent as the scrape starts: a scrape that held the event loop until its text was
        // whole would have it answered only after the response's end().
        answered = get(other, '/').then((x) => x.body === 'ok' && !ended);
        const end = res.end.bind(res) as (...a: unknown[]) => typeof res;
        res.end = ((...a: unknown[]) => ((ended = true), end(...a))) as typeof res.end;
        handler(req, res);
      }),
    );
    const r = await get(metricsServer, '/metrics');
    expect(r.status).toBe(200);
    expect(await answered).toBe(true);
  });
});

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

async function listen(s: Server): Promise<Server> {
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return s;
}

function get(s: Server, path: string, method = 'GET'): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  const { port } = s.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const r = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    r.on('error', reject);
    r.end();
  });
}

describe('GET /metrics', () => {
  it('streams a large text (chunked) and sends a small one with its Content-Length; both equal registry.metrics()', async () => {
    const big = thousandRoutes();
    const bigServer = await listen(createServer(createMetricsHandler(big)));
    const r1 = await get(bigServer, '/metrics');
    expect(r1.status).toBe(200);
    expect(r1.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(r1.headers['transfer-encoding']).toBe('chunked');
    const ours = parse(r1.body);
    const theirs = parse(await big.registry.metrics());
    expect([...ours.families]).toEqual([...theirs.families]);
    expect(stable(ours)).toEqual(stable(theirs));

    const { m, routes } = setUp(false);
    traffic(routes, 0);
    const small = await listen(createServer(createMetricsHandler(m)));
    const r2 = await get(small, '/metrics');
    expect(r2.status).toBe(200);
    expect(r2.headers['content-length']).toBe(String(Buffer.byteLength(r2.body)));
    expect(r2.body).toBe(await m.registry.metrics());
    const head = await get(small, '/metrics', 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(head.body).toBe('');
  });

  it('stops rendering for a scraper that went away, and the next scrape is whole', async () => {
    const m = thousandRoutes();
    const s = await listen(createServer(createMetricsHandler(m)));
    const { port } = s.address() as AddressInfo;
    await new Promise<void>((resolve) => {
      const r = request({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
        res.once('data', () => {
          r.destroy();
          resolve();
        });
      });
      r.on('error', () => undefined);
      r.end();
    });
    const again = await get(s, '/metrics');
    expect(again.status).toBe(200);
    expect(parse(again.body).samples.size).toBeGreaterThan(100_000);
  });
});
