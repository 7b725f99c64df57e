// The dead-letter admin endpoints end to end, in-process on loopback with a real upstream:
// bulk replay (each entry once, the rate limit, `limit`, `unknown` entries only with force,
// two bulk replays at once), DELETE of a route's entries and of one entry (across a
// restart), the critical `dead_letters_evicted` event, and the token guard on every endpoint.
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { createAdminHandler, type AdminState } from '../../src/admin/server.js';
import type { ProxyState } from '../../src/proxy/http.js';
import { metricValue, startProxy, type TestProxy } from '../helpers/proxy.js';
import { hang, ok, startUpstream, type Behaviour, type TestUpstream } from '../helpers/upstream.js';
import { req, type ReqOpts } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const use = useCleanup();
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function journalDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'outrigger-dl-admin-'));
  dirs.push(d);
  return d;
}

type Json = any;

async function call(base: string, path: string, opts: ReqOpts = {}): Promise<{ status: number; headers: Record<string, unknown>; body: Json }> {
  const r = await req(base, { ...opts, path });
  return { status: r.status, headers: r.headers, body: r.body ? JSON.parse(r.body) : null };
}

/** A real upstream that answers 201 and notes when each request arrived. */
async function recordingUpstream(): Promise<TestUpstream & { arrivals: Array<{ url: string; at: number }> }> {
  const arrivals: Array<{ url: string; at: number }> = [];
  const stored = ok('stored', 201);
  const behave: Behaviour = (r, res, n, body) => {
    arrivals.push({ url: r.url ?? '', at: performance.now() });
    stored(r, res, n, body);
  };
  const up = await startUpstream(behave);
  return Object.assign(up, { arrivals });
}

interface Setup {
  p: TestProxy;
  up: Awaited<ReturnType<typeof recordingUpstream>>;
  dir: string;
  auth: Record<string, string>;
  cfg: Record<string, unknown>;
}

/** Two dead-lettering routes (orders, billing) to one real upstream. */
async function setup(opts: { token?: string; dir?: string; orders?: Record<string, unknown>; up?: Setup['up'] } = {}): Promise<Setup> {
  const up = opts.up ?? use(await recordingUpstream());
  const dir = opts.dir ?? journalDir();
  const dl = { enabled: true, dir, syncInterval: '10ms' };
  const cfg = {
    upstreams: { app: { endpoints: [up.url], connectTimeout: '500ms' } },
    routes: [
      { name: 'orders', match: { pathPrefix: '/orders' }, upstream: 'app', timeout: '300ms', retry: { attempts: 0 }, deadLetter: { ...dl, ...opts.orders } },
      { name: 'billing', match: { pathPrefix: '/billing' }, upstream: 'app', timeout: '300ms', retry: { attempts: 0 }, deadLetter: dl },
    ],
  };
  const env = opts.token ? { OUTRIGGER_ADMIN_TOKEN: opts.token } : {};
  const p = use(await startProxy(cfg, { env }));
  const auth: Record<string, string> = opts.token ? { authorization: `Bearer ${opts.token}` } : {};
  return { p, up, dir, auth, cfg };
}

/**
 * `n` POSTs that the route's isolated breaker refuses (breaker-open, delivery not-sent),
 * each to its own path; returns the dead-letter ids in order. The breaker is reset after.
 */
async function notSent(s: Setup, route: 'orders' | 'billing', n: number, tag: string = route): Promise<string[]> {
  expect((await call(s.p.adminUrl, `/breakers/${route}/isolate`, { method: 'POST', headers: s.auth })).status).toBe(200);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const r = await req(s.p.url, { method: 'POST', path: `/${route}/${tag}-${i}`, body: `{"n":${i}}`, headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(503);
    expect(r.headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    ids.push(r.headers['x-outrigger-dead-letter'] as string);
  }
  expect((await call(s.p.adminUrl, `/breakers/${route}/reset`, { method: 'POST', headers: s.auth })).status).toBe(200);
  for (const id of ids) expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
  return ids;
}

/** A POST the upstream receives but never answers (route timeout): delivery unknown. */
async function unknownDelivery(s: Setup, path: string): Promise<string> {
  const prev = s.up.behave;
  s.up.behave = hang;
  const r = await req(s.p.url, { method: 'POST', path, body: 'x', headers: { 'content-type': 'text/plain' } });
  s.up.behave = prev;
  expect(r.status).toBe(504);
  const id = r.headers['x-outrigger-dead-letter'] as string;
  expect(id).toBeTruthy();
  return id;
}

const seen = (s: Setup, url: string): number => s.up.seen.filter((x) => x.url === url).length;

async function list(s: Setup, query = ''): Promise<Json> {
  const r = await call(s.p.adminUrl, `/dead-letters${query}`, { headers: s.auth });
  expect(r.status).toBe(200);
  return r.body;
}

describe('POST /dead-letters/replay (bulk)', () => {
  it('replays each not-sent entry of the route once, oldest first, honouring limit and rate, and skips unknown ones without force', async () => {
    const s = await setup();
    const ids = await notSent(s, 'orders', 5);
    const unknown = await unknownDelivery(s, '/orders/unknown');
    const [billing] = await notSent(s, 'billing', 1);
    expect(seen(s, '/orders/unknown')).toBe(1);
    expect(s.up.arrivals.filter((a) => a.url.startsWith('/orders/orders-'))).toEqual([]);

    // limit=4 at 5 per second: at least 3 gaps of 200ms between the 4 replays.
    const rate = 5;
    const gap = 1000 / rate;
    const t0 = performance.now();
    const first = await call(s.p.adminUrl, `/dead-letters/replay?route=orders&limit=4&rate=${rate}`, { method: 'POST' });
    const elapsed = performance.now() - t0;
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ replayed: 4, failed: 0, skipped: 1 });
    expect(first.body.results.map((r: Json) => r.id)).toEqual(ids.slice(0, 4));
    for (const r of first.body.results) expect(r).toMatchObject({ status: 201, result: 'success', error: null });
    expect(elapsed).toBeGreaterThanOrEqual(3 * gap * 0.8);
    const arrivals = s.up.arrivals.filter((a) => a.url.startsWith('/orders/orders-'));
    expect(arrivals.map((a) => a.url)).toEqual([0, 1, 2, 3].map((i) => `/orders/orders-${i}`));
    for (let i = 1; i < arrivals.length; i++) {
      expect((arrivals[i] as { at: number }).at - (arrivals[i - 1] as { at: number }).at).toBeGreaterThanOrEqual(gap * 0.75);
    }
    // Sent as new requests, with the body and the id as the Idempotency-Key.
    const firstSeen = s.up.seen.find((x) => x.url === '/orders/orders-0');
    expect(firstSeen).toMatchObject({ method: 'POST', body: '{"n":0}' });
    expect(firstSeen?.headers['idempotency-key']).toBe(ids[0]);

    // The rest: the one left by the limit; the four replayed and the unknown one are skipped.
    const second = await call(s.p.adminUrl, '/dead-letters/replay?route=orders&rate=1000', { method: 'POST' });
    expect(second.body).toMatchObject({ replayed: 1, failed: 0, skipped: 5 });
    expect(second.body.results.map((r: Json) => r.id)).toEqual([ids[4]]);
    const third = await call(s.p.adminUrl, '/dead-letters/replay?route=orders&rate=1000', { method: 'POST' });
    expect(third.body).toEqual({ replayed: 0, failed: 0, skipped: 6, results: [] });
    for (let i = 0; i < 5; i++) expect(seen(s, `/orders/orders-${i}`), `orders-${i}`).toBe(1);
    expect(seen(s, '/orders/unknown')).toBe(1);

    // Each entry is marked replayed; the other route's entry is untouched.
    const after = await list(s, '?route=orders');
    for (const e of after.entries) {
      if (e.id === unknown) expect(e.replayed).toBeNull();
      else expect(e.replayed).toMatchObject({ status: 201 });
    }
    expect((await call(s.p.adminUrl, `/dead-letters/${billing as string}`)).body.replayed).toBeNull();
    expect(seen(s, '/billing/billing-0')).toBe(0);

    // force=true takes the unknown one too: the operator accepts a possible duplicate.
    const forced = await call(s.p.adminUrl, '/dead-letters/replay?route=orders&force=true&rate=1000', { method: 'POST' });
    expect(forced.body).toMatchObject({ replayed: 1, failed: 0, skipped: 5 });
    expect(forced.body.results.map((r: Json) => r.id)).toEqual([unknown]);
    expect(seen(s, '/orders/unknown')).toBe(2);
    expect(await metricValue(s.p.metricsUrl, 'outrigger_dead_letters_replayed_total', { route: 'orders', result: 'success' })).toBe(6);
    expect(await metricValue(s.p.metricsUrl, 'outrigger_dead_letters_replayed_total', { route: 'billing', result: 'success' })).toBe(0);
  });

  it('without route= replays every route; a failed replay is counted and recorded, and retried by the next bulk replay', async () => {
    const s = await setup();
    const orders = await notSent(s, 'orders', 2);
    const billing = await notSent(s, 'billing', 2);
    // The upstream refuses the first replay with a 500: a failure, recorded on the entry.
    let n = 0;
    const prev = s.up.behave;
    s.up.behave = (r, res, i, body) => (++n === 1 ? ok('no', 500)(r, res, i, body) : prev(r, res, i, body));
    const all = await call(s.p.adminUrl, '/dead-letters/replay?rate=1000', { method: 'POST' });
    expect(all.status).toBe(200);
    expect(all.body).toMatchObject({ replayed: 3, failed: 1, skipped: 0 });
    const sorted = [...orders, ...billing].sort();
    expect(all.body.results.map((r: Json) => r.id)).toEqual(sorted);
    expect(all.body.results[0]).toMatchObject({ status: 500, result: 'failure' });
    const failedId = sorted[0] as string;
    const failed = (await call(s.p.adminUrl, `/dead-letters/${failedId}`)).body;
    expect(failed.replayed).toBeNull();
    expect(failed.attempts).toEqual([expect.objectContaining({ status: 500 })]);
    const retry = await call(s.p.adminUrl, '/dead-letters/replay?rate=1000', { method: 'POST' });
    expect(retry.body).toMatchObject({ replayed: 1, failed: 0, skipped: 3 });
    expect(retry.body.results.map((r: Json) => r.id)).toEqual([failedId]);
    expect(await metricValue(s.p.metricsUrl, 'outrigger_dead_letters_replayed_total', { route: failedId === orders[0] ? 'orders' : 'billing', result: 'failure' })).toBe(1);
  });

  it('takes the oldest entries across routes first when limit cuts the list', async () => {
    const s = await setup();
    // billing's entries are older than orders' (the journals are listed orders first).
    const billing = await notSent(s, 'billing', 2);
    const orders = await notSent(s, 'orders', 2);
    const r = await call(s.p.adminUrl, '/dead-letters/replay?limit=3&rate=1000', { method: 'POST' });
    expect(r.body).toMatchObject({ replayed: 3, failed: 0 });
    expect(r.body.results.map((x: Json) => x.id)).toEqual([...billing, orders[0]]);
    expect(seen(s, '/orders/orders-1')).toBe(0);
  });

  it('replays each entry once when two bulk replays (and a single one) run at the same time', async () => {
    const s = await setup();
    const ids = await notSent(s, 'orders', 4);
    const bulk = () => call(s.p.adminUrl, '/dead-letters/replay?route=orders&rate=20', { method: 'POST' });
    const [a, b, single] = await Promise.all([bulk(), bulk(), call(s.p.adminUrl, `/dead-letters/${ids[3] as string}/replay`, { method: 'POST' })]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    for (let i = 0; i < 4; i++) expect(seen(s, `/orders/orders-${i}`), `orders-${i}`).toBe(1);
    const singleOk = single.status === 200 ? 1 : 0;
    // The single replay either sent it, or was refused because a bulk replay had it in flight or done.
    if (!singleOk) expect(single.status).toBe(409);
    expect(a.body.replayed + b.body.replayed + singleOk).toBe(4);
    expect(a.body.failed + b.body.failed).toBe(0);
    expect((await list(s, '?route=orders')).entries.every((e: Json) => e.replayed !== null)).toBe(true);
  });

  it('refuses bad parameters and an unknown route', async () => {
    const s = await setup();
    for (const q of ['limit=0', 'limit=1001', 'limit=x', 'rate=0', 'rate=-1', 'rate=1001', 'rate=fast']) {
      const r = await call(s.p.adminUrl, `/dead-letters/replay?${q}`, { method: 'POST' });
      expect(r.status, q).toBe(400);
      expect(r.body.error.code).toBe('BAD_REQUEST');
    }
    expect((await call(s.p.adminUrl, '/dead-letters/replay?route=nope', { method: 'POST' })).status).toBe(404);
    expect((await call(s.p.adminUrl, '/dead-letters/replay')).status).toBe(405);
  });
});

describe('DELETE /dead-letters', () => {
  it('?route= removes that route\'s entries only, and they stay removed after a restart', async () => {
    const s = await setup();
    await notSent(s, 'orders', 3);
    const billing = await notSent(s, 'billing', 2);
    const del = await call(s.p.adminUrl, '/dead-letters?route=orders', { method: 'DELETE' });
    expect(del).toMatchObject({ status: 200, body: { deleted: 3 } });
    expect((await list(s, '?route=orders')).entries).toEqual([]);
    expect((await list(s, '?route=billing')).entries.map((e: Json) => e.id)).toEqual(billing);
    expect((await call(s.p.adminUrl, '/dead-letters?route=nope', { method: 'DELETE' })).status).toBe(404);
    expect(s.p.logs.some((l) => l.msg === 'dead letters deleted by admin' && l.route === 'orders' && l.deleted === 3)).toBe(true);

    // Restart at once on the same journal directory.
    await s.p.close();
    const again = await setup({ dir: s.dir, up: s.up });
    expect((await list(again, '?route=orders')).entries).toEqual([]);
    expect((await list(again, '?route=billing')).entries.map((e: Json) => e.id)).toEqual(billing);
    // And new entries still go to the cleared journal.
    const [fresh] = await notSent(again, 'orders', 1, 'fresh');
    expect((await list(again, '?route=orders')).entries.map((e: Json) => e.id)).toEqual([fresh]);
  });

  it('without route= removes every route\'s entries', async () => {
    const s = await setup();
    await notSent(s, 'orders', 2);
    await notSent(s, 'billing', 1);
    expect((await call(s.p.adminUrl, '/dead-letters', { method: 'DELETE' })).body).toEqual({ deleted: 3 });
    expect((await list(s)).total).toBe(0);
    expect((await call(s.p.adminUrl, '/dead-letters', { method: 'DELETE' })).body).toEqual({ deleted: 0 });
  });

  it('/{id} removes one entry, also after a restart; a second DELETE is 404', async () => {
    const s = await setup();
    const ids = await notSent(s, 'orders', 3);
    const victim = ids[1] as string;
    expect(await call(s.p.adminUrl, `/dead-letters/${victim}`, { method: 'DELETE' })).toMatchObject({ status: 200, body: { deleted: 1 } });
    expect((await call(s.p.adminUrl, `/dead-letters/${victim}`)).status).toBe(404);
    expect((await call(s.p.adminUrl, `/dead-letters/${victim}`, { method: 'DELETE' })).status).toBe(404);
    expect((await call(s.p.adminUrl, `/dead-letters/${victim}/replay`, { method: 'POST' })).status).toBe(404);
    // ids are case-insensitive (Crockford base32).
    expect((await call(s.p.adminUrl, `/dead-letters/${(ids[2] as string).toLowerCase()}`)).body.id).toBe(ids[2]);
    expect((await list(s, '?route=orders')).entries.map((e: Json) => e.id)).toEqual([ids[0], ids[2]]);
    // A bulk replay never sends the deleted one.
    expect((await call(s.p.adminUrl, '/dead-letters/replay?rate=1000', { method: 'POST' })).body).toMatchObject({ replayed: 2 });
    expect(seen(s, '/orders/orders-1')).toBe(0);
    await s.p.close();
    const again = await setup({ dir: s.dir, up: s.up });
    const entries = (await list(again, '?route=orders')).entries;
    expect(entries.map((e: Json) => e.id)).toEqual([ids[0], ids[2]]);
    expect(entries.every((e: Json) => e.replayed?.status === 201)).toBe(true);
  });
});

describe('eviction', () => {
  it('never dead-letters a failed replay again, also with a route of its own retry.idempotencyHeader', async () => {
    const up = use(await recordingUpstream());
    const dir = journalDir();
    const p = use(
      await startProxy({
        upstreams: { app: { endpoints: [up.url] } },
        routes: [{ name: 'orders', match: { pathPrefix: '/' }, upstream: 'app', retry: { idempotencyHeader: 'x-idem' }, deadLetter: { enabled: true, dir, syncInterval: '10ms' } }],
      }),
    );
    expect((await call(p.adminUrl, '/breakers/orders/isolate', { method: 'POST' })).status).toBe(200);
    const r = await req(p.url, { path: '/orders', method: 'POST', body: 'x' });
    const id = String(r.headers['x-outrigger-dead-letter']);
    for (let i = 0; i < 3; i++) expect((await call(p.adminUrl, `/dead-letters/${id}/replay`, { method: 'POST' })).status).toBe(502);
    expect((await call(p.adminUrl, '/dead-letters')).body.total).toBe(1);
  });

  it('shows each recording route\'s dead-letter count in /stats (the status page\'s data), null for others', async () => {
    const s = await setup();
    await notSent(s, 'orders', 2);
    const stats = (await call(s.p.adminUrl, '/stats', { headers: s.auth })).body as { routes: Array<{ name: string; deadLetters: unknown }> };
    const byName = new Map(stats.routes.map((r) => [r.name, r.deadLetters]));
    expect(byName.get('orders')).toMatchObject({ entries: 2, evicted: 0 });
    expect(byName.get('billing')).toMatchObject({ entries: 0 });
    const page = await req(s.p.adminUrl, { path: '/' });
    expect(page.body).toContain('dead letters: ');
  });

  it('raises a critical dead_letters_evicted event on the admin port, counts and logs each eviction (maxEntries and maxBytes)', async () => {
    // orders keeps 2 entries; billing 1KiB of records (each about 500 bytes: a 300-byte body).
    const s = await setup({ orders: { maxEntries: 2 } });
    const ids = await notSent(s, 'orders', 5);
    let events = (await call(s.p.adminUrl, '/events?severity=critical')).body.events;
    const evicted = events.filter((e: Json) => e.kind === 'dead_letters_evicted' && e.route === 'orders');
    expect(evicted).toHaveLength(1);
    expect(evicted[0]).toMatchObject({ severity: 'critical', count: 3 });
    expect(evicted[0].message).toMatch(/maxEntries/);
    expect(await metricValue(s.p.metricsUrl, 'outrigger_dead_letters_evicted_total', { route: 'orders' })).toBe(3);
    const l = await list(s, '?route=orders');
    expect(l.entries.map((e: Json) => e.id)).toEqual(ids.slice(3));
    expect(l.journals[0]).toMatchObject({ route: 'orders', entries: 2, evicted: 3 });
    const logged = s.p.logs.filter((x) => x.event === 'dead_letters_evicted' && x.route === 'orders');
    expect(logged.map((x) => x.id)).toEqual(ids.slice(0, 3));
    expect(await metricValue(s.p.metricsUrl, 'outrigger_dead_letters_evicted_total', { route: 'billing' })).toBe(0);
    expect(events.some((e: Json) => e.kind === 'dead_letters_evicted' && e.route === 'billing')).toBe(false);

    // maxBytes, on a route of its own.
    const t = await setup({ orders: { maxBytes: '1KiB', maxBodyBytes: '512B' } });
    expect((await call(t.p.adminUrl, '/breakers/orders/isolate', { method: 'POST' })).status).toBe(200);
    for (let i = 0; i < 4; i++) await req(t.p.url, { method: 'POST', path: `/orders/big-${i}`, body: 'y'.repeat(300) });
    const stats = (await list(t, '?route=orders')).journals[0];
    expect(stats.bytes).toBeLessThanOrEqual(1024);
    expect(stats.evicted).toBeGreaterThan(0);
    events = (await call(t.p.adminUrl, '/events')).body.events;
    const byBytes = events.find((e: Json) => e.kind === 'dead_letters_evicted');
    expect(byBytes).toMatchObject({ severity: 'critical', route: 'orders', count: stats.evicted });
    expect(byBytes.message).toMatch(/maxBytes/);
    expect(await metricValue(t.p.metricsUrl, 'outrigger_dead_letters_evicted_total', { route: 'orders' })).toBe(stats.evicted);
  });
});

describe('the token guard on the dead-letter endpoints', () => {
  it('answers 401 on every endpoint without the bearer token or with a wrong one, changing nothing; 2xx with it', async () => {
    const s = await setup({ token: 'tok' });
    const ids = await notSent(s, 'orders', 3);
    const [billing] = await notSent(s, 'billing', 1);
    const id = ids[0] as string;
    const endpoints: Array<[string, string]> = [
      ['GET', '/dead-letters'],
      ['GET', '/dead-letters?route=orders&limit=1'],
      ['HEAD', '/dead-letters'],
      ['GET', `/dead-letters/${id}`],
      ['POST', `/dead-letters/${id}/replay`],
      ['POST', `/dead-letters/${id}/replay?force=true`],
      ['POST', '/dead-letters/replay?route=orders&rate=1000'],
      ['DELETE', `/dead-letters/${id}`],
      ['DELETE', '/dead-letters?route=orders'],
      ['DELETE', '/dead-letters'],
      // Unknown ids, routes and sub-paths are not revealed either.
      ['GET', '/dead-letters/01ARZ3NDEKTSV4RRFFQ69G5FAV'],
      ['DELETE', '/dead-letters?route=nope'],
      ['GET', '/dead-letters/nothing/here'],
    ];
    const badAuth: Array<Record<string, string>> = [{}, { authorization: 'Bearer wrong' }, { authorization: 'Bearer tok2' }, { authorization: 'Basic dG9rOg==' }, { authorization: 'tok' }];
    for (const [method, path] of endpoints) {
      for (const headers of badAuth) {
        const r = await req(s.p.adminUrl, { method, path, headers });
        expect(r.status, `${method} ${path} ${JSON.stringify(headers)}`).toBe(401);
        expect(r.headers['www-authenticate']).toBe('Bearer');
        if (method !== 'HEAD') expect(JSON.parse(r.body).error.code).toBe('UNAUTHORIZED');
        expect(r.body).not.toContain(id);
      }
    }
    // Nothing was replayed or deleted.
    expect(s.up.seen).toEqual([]);
    expect((await list(s)).total).toBe(4);

    // With the token, each works.
    const ok200 = async (method: string, path: string): Promise<Json> => {
      const r = await call(s.p.adminUrl, path, { method, headers: s.auth });
      expect(r.status, `${method} ${path}`).toBe(200);
      return r.body;
    };
    expect((await ok200('GET', `/dead-letters/${id}`)).id).toBe(id);
    expect(await ok200('POST', `/dead-letters/${id}/replay`)).toMatchObject({ id, result: 'success' });
    expect(await ok200('POST', '/dead-letters/replay?route=orders&rate=1000')).toMatchObject({ replayed: 2 });
    expect(await ok200('DELETE', `/dead-letters/${ids[1] as string}`)).toEqual({ deleted: 1 });
    expect(await ok200('DELETE', '/dead-letters?route=orders')).toEqual({ deleted: 2 });
    expect((await ok200('GET', '/dead-letters')).entries.map((e: Json) => e.id)).toEqual([billing]);
    expect(await ok200('DELETE', '/dead-letters')).toEqual({ deleted: 1 });
    expect(s.up.seen.map((x) => x.url).sort()).toEqual(['/orders/orders-0', '/orders/orders-1', '/orders/orders-2']);

    // The proxy port never serves them: the request is routed like any other (no route here).
    const viaProxy = await req(s.p.url, { path: '/dead-letters', headers: s.auth });
    expect(viaProxy.headers['x-outrigger-error']).toBe('OUTRIGGER_NO_ROUTE');
  });

  it('without a token accepts loopback callers only (403 from any other address)', async () => {
    // A non-loopback caller cannot be made on 127.0.0.1, so this drives the handler directly.
    const journal = {
      route: 'orders',
      get: () => undefined,
      summaries: function* () {},
      stats: () => ({ route: 'orders' }),
      markReplayed: () => false,
      recordAttempt: () => false,
      delete: () => false,
      clear: () => 0,
    };
    const state = {
      proxy: { runtime: { journals: new Map([['orders', journal]]) }, log: { warn: () => undefined } } as unknown as ProxyState,
      ready: true,
      token: undefined,
      lastReloadError: null,
      reload: () => Promise.resolve([]),
      replayDeadLetter: () => Promise.reject(new Error('must not be called')),
    } as AdminState;
    const handler = createAdminHandler(state);
    const status = (remoteAddress: string, method: string, url: string): number => {
      const request = Object.assign(new PassThrough(), { url, method, headers: {}, socket: { remoteAddress } }) as unknown as IncomingMessage;
      let code = 0;
      const response = { writeHead: (c: number) => (code = c), end: () => undefined } as unknown as ServerResponse;
      handler(request, response);
      return code;
    };
    const endpoints: Array<[string, string]> = [
      ['GET', '/dead-letters'],
      ['GET', '/dead-letters/01ARZ3NDEKTSV4RRFFQ69G5FAV'],
      ['POST', '/dead-letters/01ARZ3NDEKTSV4RRFFQ69G5FAV/replay'],
      ['POST', '/dead-letters/replay'],
      ['DELETE', '/dead-letters/01ARZ3NDEKTSV4RRFFQ69G5FAV'],
      ['DELETE', '/dead-letters?route=orders'],
    ];
    for (const [method, url] of endpoints) {
      for (const addr of ['10.1.2.3', '::ffff:10.1.2.3', '192.168.0.9', 'fe80::1']) expect(status(addr, method, url), `${method} ${url} from ${addr}`).toBe(403);
      expect(status('127.0.0.1', method, url), `${method} ${url} from loopback`).not.toBe(403);
      expect(status('::1', method, url)).not.toBe(403);
    }
    expect(status('127.0.0.1', 'DELETE', '/dead-letters?route=orders')).toBe(200);
    expect(status('127.0.0.1', 'GET', '/dead-letters/01ARZ3NDEKTSV4RRFFQ69G5FAV')).toBe(404);
  });
});
