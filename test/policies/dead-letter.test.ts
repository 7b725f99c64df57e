// The dead-letter layer end to end, in-process: what is recorded (and redacted), the header
// on the client's answer, replay through the route's stack with the Idempotency-Key, and
// the refused replay of an entry whose delivery is unknown.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startProxy } from '../helpers/proxy.js';
import { hang, ok, startUpstream } from '../helpers/upstream.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

const use = useCleanup();
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function journalDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'outrigger-dl-'));
  dirs.push(d);
  return d;
}

/** `req` with the path taken from the URL. */
function at(url: string, opts: Parameters<typeof req>[1] = {}): ReturnType<typeof req> {
  const u = new URL(url);
  return req(u.origin, { ...opts, path: u.pathname + u.search });
}

async function json(url: string, opts: Parameters<typeof req>[1] = {}): Promise<{ status: number; body: any }> {
  const r = await at(url, opts);
  return { status: r.status, body: r.body ? JSON.parse(r.body) : null };
}

describe('dead letters', () => {
  it('records a failed POST without the secret headers, answers with the id, and replays it exactly once with the key', async () => {
    const up = use(await startUpstream(ok('stored', 201)));
    const dir = journalDir();
    // The upstream is "down" at first: the route points at a closed port.
    const closed = use(await startUpstream());
    const closedUrl = closed.url;
    await closed.close();
    const cfg = (endpoint: string) => ({
      upstreams: { app: { endpoints: [endpoint], connectTimeout: '200ms' } },
      routes: [{ name: 'orders', match: { pathPrefix: '/' }, upstream: 'app', retry: { attempts: 0 }, deadLetter: { enabled: true, dir, redactHeaders: ['x-api-key'], syncInterval: '10ms' } }],
    });
    const p = use(await startProxy(cfg(closedUrl)));
    const res = await req(p.url, {
      method: 'POST',
      path: '/orders?tenant=7',
      headers: { 'content-type': 'application/json', authorization: 'Bearer s3cret', cookie: 'sid=1', 'x-api-key': 'k', 'x-trace': 't1' },
      body: '{"item":42}',
    });
    expect(res.status).toBe(502);
    expect(res.headers['x-outrigger-error']).toBe('OUTRIGGER_UPSTREAM_UNAVAILABLE');
    const id = res.headers['x-outrigger-dead-letter'] as string;
    expect(id).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);

    // A GET is repeatable by the retry rules: never dead-lettered.
    const get = await req(p.url, { path: '/orders' });
    expect(get.headers['x-outrigger-dead-letter']).toBeUndefined();

    const list = await json(`${p.adminUrl}/dead-letters?route=orders`);
    expect(list.status).toBe(200);
    expect(list.body.entries).toHaveLength(1);
    expect(list.body.entries[0].body).toBeUndefined();
    const one = await json(`${p.adminUrl}/dead-letters/${id}`);
    const e = one.body;
    expect(e).toMatchObject({ id, route: 'orders', method: 'POST', path: '/orders?tenant=7', code: 'OUTRIGGER_UPSTREAM_UNAVAILABLE', reason: 'upstream-unavailable', delivery: 'not-sent', bodyKept: true, idempotencyKey: null });
    expect(Buffer.from(e.body, 'base64').toString()).toBe('{"item":42}');
    const names = e.headers.map(([k]: [string]) => k.toLowerCase());
    expect(names).toContain('x-trace');
    for (const secret of ['authorization', 'cookie', 'x-api-key']) expect(names).not.toContain(secret);

    // The upstream recovers (a reload points the route at it); the replay reaches it once.
    p.writeConfig(cfg(up.url));
    expect(await p.app.reload()).toEqual([]);
    const replay = await json(`${p.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({ id, status: 201, result: 'success' });
    expect(up.seen).toHaveLength(1);
    expect(up.seen[0]).toMatchObject({ method: 'POST', url: '/orders?tenant=7', body: '{"item":42}' });
    expect(up.seen[0]?.headers['idempotency-key']).toBe(id);
    expect(up.seen[0]?.headers['x-trace']).toBe('t1');
    const again = await json(`${p.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' });
    expect(again.status).toBe(409);
    expect(up.seen).toHaveLength(1);
    expect((await json(`${p.adminUrl}/dead-letters/${id}`)).body.replayed.status).toBe(201);

    const metrics = (await at(`${p.metricsUrl}/metrics`)).body;
    expect(metrics).toContain('outrigger_dead_letters_total{route="orders",reason="upstream-unavailable"} 1');
    expect(metrics).toContain('outrigger_dead_letters_total{route="orders",reason="breaker-open"} 0');
    expect(metrics).toContain('outrigger_dead_letters_replayed_total{route="orders",result="success"} 1');
    expect(metrics).toContain('outrigger_dead_letters_evicted_total{route="orders"} 0');
    const events = await json(`${p.adminUrl}/events`);
    expect(events.body.events.some((ev: any) => ev.kind === 'request_dead_lettered' && ev.severity === 'error')).toBe(true);

    expect((await json(`${p.adminUrl}/dead-letters/${id}`, { method: 'DELETE' })).body).toEqual({ deleted: 1 });
    expect((await json(`${p.adminUrl}/dead-letters/${id}`)).status).toBe(404);
  });

  it('marks a request that was sent but got no answer delivery unknown, and refuses its replay without force', async () => {
    const up = use(await startUpstream(hang));
    const dir = journalDir();
    const p = use(
      await startProxy({
        upstreams: { app: { endpoints: [up.url] } },
        routes: [{ name: 'pay', match: { pathPrefix: '/' }, upstream: 'app', timeout: '150ms', deadLetter: { enabled: true, dir } }],
      }),
    );
    const res = await req(p.url, { method: 'POST', path: '/pay', body: 'x', headers: { 'content-type': 'text/plain' } });
    expect(res.status).toBe(504);
    const id = res.headers['x-outrigger-dead-letter'] as string;
    expect(id).toBeTruthy();
    const e = (await json(`${p.adminUrl}/dead-letters/${id}`)).body;
    expect(e).toMatchObject({ delivery: 'unknown', reason: 'timeout', code: 'OUTRIGGER_TIMEOUT' });
    const seenBefore = up.seen.length;
    const refused = await json(`${p.adminUrl}/dead-letters/${id}/replay`, { method: 'POST' });
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe('DELIVERY_UNKNOWN');
    expect(up.seen.length).toBe(seenBefore);
    // With a key of its own, a request is retry-safe and not recorded.
    const keyed = await req(p.url, { method: 'POST', path: '/pay', body: 'x', headers: { 'idempotency-key': 'k1' } });
    expect(keyed.headers['x-outrigger-dead-letter']).toBeUndefined();
    await waitFor(async () => (await json(`${p.adminUrl}/dead-letters`)).body.journals[0].pending === 0, { what: 'the batch fsync' });
  });

  it('guards the dead-letter endpoints with the admin token', async () => {
    const dir = journalDir();
    const p = use(
      await startProxy(
        { upstreams: { app: { endpoints: ['http://127.0.0.1:9'] } }, routes: [{ name: 'r', match: { pathPrefix: '/' }, upstream: 'app', deadLetter: { enabled: true, dir } }] },
        { env: { OUTRIGGER_ADMIN_TOKEN: 'tok' } },
      ),
    );
    expect((await at(`${p.adminUrl}/dead-letters`)).status).toBe(401);
    expect((await at(`${p.adminUrl}/dead-letters`, { headers: { authorization: 'Bearer tok' } })).status).toBe(200);
  });
});
