// Config hot reload, in-process against real loopback servers: the Kubernetes ConfigMap
// symlink swap, the hash poll, rejected reloads, breaker state across a reload, in-flight
// requests and open WebSockets across a reload, and POST /reload.
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request as httpRequest } from 'node:http';
import pino from 'pino';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { start, type Outrigger } from '../../src/app.js';
import { LOOPBACK_LISTENERS, metricValue } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { failFirst, ok, slowBody, startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startWsUpstream } from '../helpers/ws-upstream.js';
import { sleep, waitFor } from '../helpers/wait.js';

interface Running {
  app: Outrigger;
  url: string;
  adminUrl: string;
  metricsUrl: string;
  logs: Array<Record<string, unknown>>;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  // Last in, first out: the proxy closes before the upstreams it talks to.
  while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-reload-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function upstream(body: string): Promise<TestUpstream> {
  const up = await startUpstream(ok(body));
  cleanups.push(() => up.close());
  return up;
}

function yaml(cfg: Record<string, unknown>): string {
  return stringify({ ...LOOPBACK_LISTENERS, ...cfg });
}

/** Starts Outrigger on `configPath` (written by the caller), logging to memory. */
async function startAt(configPath: string, watch: boolean): Promise<Running> {
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'info', formatters: { level: (label) => ({ level: label }) } },
    { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) },
  );
  const app = await start({ configPath, env: {}, logger, processMetrics: false, watch });
  cleanups.push(() => app.close());
  return {
    app,
    url: `http://127.0.0.1:${app.proxy.port}`,
    adminUrl: `http://127.0.0.1:${app.admin.port}`,
    metricsUrl: `http://127.0.0.1:${app.metricsAddress.port}`,
    logs,
  };
}

/** One route `r1` on every path to the upstream at `url`. */
function routeTo(url: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    upstreams: { up: { endpoints: [url] } },
    routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', retry: { attempts: 0 } }],
    ...extra,
  };
}

interface Health {
  config: { path: string; hash: string; loadedAt: string; lastReloadError?: { at: string; problems: string[] } };
  breakers: Array<{ name: string; state: string; consecutiveFailures: number; routes: string[] }>;
}

async function health(adminUrl: string): Promise<Health> {
  return (await (await fetch(`${adminUrl}/health`)).json()) as Health;
}

async function postReload(adminUrl: string): Promise<{ status: number; body: { result: string; problems?: string[]; config?: { hash: string } } }> {
  const r = await fetch(`${adminUrl}/reload`, { method: 'POST' });
  return { status: r.status, body: (await r.json()) as { result: string; problems?: string[]; config?: { hash: string } } };
}

const reloadLogs = (logs: Array<Record<string, unknown>>, level: string) =>
  logs.filter((l) => l.level === level && typeof l.msg === 'string' && l.msg.startsWith('config reload'));

describe('config hot reload', () => {
  it('picks up a ConfigMap-style ..data symlink swap within the poll interval', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    // The layout the kubelet makes: a timestamped directory, `..data` pointing at it,
    // and the file name as a symlink through `..data`. Updates swap `..data` atomically.
    const dir = tempDir();
    const reload = { pollInterval: '500ms' };
    mkdirSync(join(dir, '..2026_01_01'));
    writeFileSync(join(dir, '..2026_01_01', 'outrigger.yaml'), yaml(routeTo(a.url, { reload })));
    symlinkSync('..2026_01_01', join(dir, '..data'));
    symlinkSync(join('..data', 'outrigger.yaml'), join(dir, 'outrigger.yaml'));
    const px = await startAt(join(dir, 'outrigger.yaml'), true);
    expect((await req(px.url)).body).toBe('A');

    mkdirSync(join(dir, '..2026_01_02'));
    writeFileSync(join(dir, '..2026_01_02', 'outrigger.yaml'), yaml(routeTo(b.url, { reload })));
    symlinkSync('..2026_01_02', join(dir, '..data_tmp'));
    const swappedAt = Date.now();
    renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
    rmSync(join(dir, '..2026_01_01'), { recursive: true });

    // Generous for a loaded machine; a watcher that missed the swap never gets there.
    await waitFor(async () => (await req(px.url)).body === 'B', { timeout: 5000, interval: 50, what: 'the swapped config to route to B' });
    expect(Date.now() - swappedAt).toBeLessThan(5000);
    expect(reloadLogs(px.logs, 'info')).toHaveLength(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'success' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_last_reload_success', {})).toBe(1);
  });

  it('notices a change no directory event reports, by polling the content hash', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    // The file really lives in a subdirectory, which is not watched: writing it in place
    // raises no event in the watched directory, so only the hash poll can see it.
    const dir = tempDir();
    const reload = { pollInterval: '300ms' };
    mkdirSync(join(dir, 'real'));
    const real = join(dir, 'real', 'outrigger.yaml');
    writeFileSync(real, yaml(routeTo(a.url, { reload })));
    symlinkSync(join('real', 'outrigger.yaml'), join(dir, 'outrigger.yaml'));
    const px = await startAt(join(dir, 'outrigger.yaml'), true);
    expect((await req(px.url)).body).toBe('A');

    writeFileSync(real, yaml(routeTo(b.url, { reload })));
    await waitFor(async () => (await req(px.url)).body === 'B', { timeout: 5000, interval: 50, what: 'the poll to pick up the in-place change' });
    expect(reloadLogs(px.logs, 'info')).toHaveLength(1);
  });

  it('applies a new reload.pollInterval on reload', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    const c = await upstream('C');
    // As in the poll test, in-place writes raise no event in the watched directory.
    const dir = tempDir();
    mkdirSync(join(dir, 'real'));
    const real = join(dir, 'real', 'outrigger.yaml');
    writeFileSync(real, yaml(routeTo(a.url, { reload: { pollInterval: '0s' } })));
    symlinkSync(join('real', 'outrigger.yaml'), join(dir, 'outrigger.yaml'));
    const px = await startAt(join(dir, 'outrigger.yaml'), true);

    // Polling is off, so it takes a POST /reload to turn it on.
    writeFileSync(real, yaml(routeTo(b.url, { reload: { pollInterval: '200ms' } })));
    expect((await postReload(px.adminUrl)).status).toBe(200);
    expect((await req(px.url)).body).toBe('B');
    writeFileSync(real, yaml(routeTo(c.url, { reload: { pollInterval: '200ms' } })));
    await waitFor(async () => (await req(px.url)).body === 'C', { timeout: 5000, interval: 50, what: 'the new poll interval to pick up the change' });
  });

  it('sees a change made right after start, before the watcher has read the file', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    const reload = { pollInterval: '200ms' };
    writeFileSync(path, yaml(routeTo(a.url, { reload })));
    const px = await startAt(path, true);
    // No await between start and the write: the watcher's first look at the file may
    // come after it, and must still compare against the config that was loaded.
    writeFileSync(path, yaml(routeTo(b.url, { reload })));
    await waitFor(async () => (await req(px.url)).body === 'B', { timeout: 5000, interval: 50, what: 'the change made right after start' });
  });

  it('keeps an invalid config out while traffic carries on', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    const reload = { pollInterval: '200ms' };
    writeFileSync(path, yaml(routeTo(a.url, { reload })));
    const px = await startAt(path, true);
    const before = await health(px.adminUrl);
    expect(before.config.lastReloadError).toBeUndefined();

    // Traffic all through the bad reloads: every request must still be answered by A.
    let stop = false;
    const answers: string[] = [];
    const traffic = (async () => {
      while (!stop) {
        const r = await req(px.url).catch((err: unknown) => ({ status: 0, body: String(err) }));
        answers.push(`${r.status} ${r.body}`);
      }
    })();
    cleanups.push(async () => {
      stop = true;
      await traffic;
    });

    writeFileSync(
      path,
      yaml({
        reload,
        upstreams: { up: { endpoints: [b.url] } },
        routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', timeout: 'soon', retry: { attempts: 99 } }],
      }),
    );
    const h = await waitFor(async () => {
      const doc = await health(px.adminUrl);
      return doc.config.lastReloadError ? doc : null;
    }, { timeout: 5000, what: 'lastReloadError on /health' });
    const problems = h.config.lastReloadError?.problems ?? [];
    expect(problems.length).toBeGreaterThanOrEqual(2);
    expect(problems.join('\n')).toMatch(/routes\[0\]\.timeout/);
    expect(problems.join('\n')).toMatch(/routes\[0\]\.retry\.attempts/);
    expect(h.config.hash).toBe(before.config.hash);
    expect(h.config.loadedAt).toBe(before.config.loadedAt);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'failure' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'success' })).toBe(0);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_last_reload_success', {})).toBe(0);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_last_reload_timestamp_seconds', {})).toBeGreaterThan(Date.now() / 1000 - 600);

    const errors = reloadLogs(px.logs, 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]?.problems).toEqual(problems);

    // Asking again gets the same problems, as a 422, and counts once more.
    const posted = await postReload(px.adminUrl);
    expect(posted.status).toBe(422);
    expect(posted.body.result).toBe('rejected');
    expect(posted.body.problems).toEqual(problems);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'failure' })).toBe(2);
    expect(reloadLogs(px.logs, 'error')).toHaveLength(2);

    // A YAML syntax error is rejected the same way.
    writeFileSync(path, 'routes: [\n  {name: r1\n');
    await waitFor(async () => (await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'failure' })) === 3, { timeout: 5000, what: 'the syntax error to be rejected' });
    expect((await health(px.adminUrl)).config.lastReloadError?.problems.join('\n')).toMatch(/YAML syntax error/);

    // Let requests run under the rejected config for a while.
    const seen = answers.length;
    await waitFor(() => answers.length >= seen + 20, { timeout: 10_000, what: 'more traffic' });

    // Reverting to the config being served clears the error without a reload to apply.
    writeFileSync(path, yaml(routeTo(a.url, { reload })));
    expect(await postReload(px.adminUrl)).toMatchObject({ status: 200, body: { result: 'success', config: { hash: before.config.hash } } });
    expect((await health(px.adminUrl)).config.lastReloadError).toBeUndefined();
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'success' })).toBe(0);

    // A valid file again: applied, and the error is gone from /health.
    writeFileSync(path, yaml(routeTo(b.url, { reload })));
    await waitFor(async () => (await req(px.url)).body === 'B', { timeout: 5000, what: 'the fixed config' });
    stop = true;
    await traffic;
    const after = await health(px.adminUrl);
    expect(after.config.lastReloadError).toBeUndefined();
    expect(after.config.hash).not.toBe(before.config.hash);

    expect(answers.length).toBeGreaterThan(20);
    const firstB = answers.indexOf('200 B');
    const underOld = firstB < 0 ? answers : answers.slice(0, firstB);
    expect(underOld.filter((a) => a !== '200 A')).toEqual([]);
    expect(answers.slice(firstB >= 0 ? firstB : answers.length).filter((a) => a !== '200 B')).toEqual([]);
  });

  it('keeps breaker state across a reload unless its settings changed, and drops removed breakers', async () => {
    const failing = await startUpstream((_req, res) => {
      res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('down');
    });
    cleanups.push(() => failing.close());
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    const route = (name: string, breaker: Record<string, unknown>) => ({
      name,
      match: { pathPrefix: `/${name}` },
      upstream: 'up',
      retry: { attempts: 0 },
      breaker: { halfOpenAfter: '60s', ...breaker },
    });
    const cfg = (changed: boolean, withGone: boolean) => ({
      upstreams: { up: { endpoints: [failing.url] } },
      routes: [
        route('keepopen', { consecutiveFailures: 3 }),
        route('keepcount', { consecutiveFailures: 3 }),
        route('changed', { consecutiveFailures: changed ? 4 : 3 }),
        ...(withGone ? [route('gone', { consecutiveFailures: 3 })] : []),
      ],
    });
    writeFileSync(path, yaml(cfg(false, true)));
    const px = await startAt(path, false);

    const hit = async (name: string, n: number) => {
      for (let i = 0; i < n; i++) await req(px.url, { path: `/${name}` });
    };
    await hit('keepopen', 3);
    await hit('keepcount', 2);
    await hit('changed', 3);
    await hit('gone', 3);
    const byName = async () => new Map((await health(px.adminUrl)).breakers.map((b) => [b.name, b]));
    let bs = await byName();
    expect(bs.get('keepopen')).toMatchObject({ state: 'open' });
    expect(bs.get('keepcount')).toMatchObject({ state: 'closed', consecutiveFailures: 2 });
    expect(bs.get('changed')).toMatchObject({ state: 'open' });
    expect(bs.get('gone')).toMatchObject({ state: 'open' });

    writeFileSync(path, yaml(cfg(true, false)));
    expect(await postReload(px.adminUrl)).toMatchObject({ status: 200 });

    bs = await byName();
    expect([...bs.keys()].sort()).toEqual(['changed', 'keepcount', 'keepopen']);
    const listed = (await (await fetch(`${px.adminUrl}/breakers`)).json()) as Array<{ name: string }>;
    expect(listed.map((b) => b.name).sort()).toEqual(['changed', 'keepcount', 'keepopen']);
    expect(bs.get('keepopen')).toMatchObject({ state: 'open', routes: ['keepopen'] });
    expect(bs.get('keepcount')).toMatchObject({ state: 'closed', consecutiveFailures: 2 });
    expect(bs.get('changed')).toMatchObject({ state: 'closed', consecutiveFailures: 0 });

    // The kept breaker still refuses; the new one lets requests through to the upstream.
    const seen = failing.seen.length;
    expect((await req(px.url, { path: '/keepopen' })).headers['x-outrigger-error']).toBe('OUTRIGGER_BREAKER_OPEN');
    expect(failing.seen.length).toBe(seen);
    expect((await req(px.url, { path: '/changed' })).status).toBe(503);
    expect(failing.seen.length).toBe(seen + 1);
    // The kept count is live, not only shown: one more failure (the third) opens it.
    await hit('keepcount', 1);
    expect((await byName()).get('keepcount')).toMatchObject({ state: 'open' });
    // The removed route is gone from the router too.
    expect((await req(px.url, { path: '/gone' })).status).toBe(404);
    // The state gauge reports the kept breaker as still open, the replaced one as closed.
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_state', { breaker: 'keepopen', state: 'open' })).toBe(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_state', { breaker: 'changed', state: 'closed' })).toBe(1);
    // A disposed breaker leaves no series behind (a stale state="open" would keep alerting).
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_state', { breaker: 'gone' })).toBeUndefined();
    expect(await metricValue(px.metricsUrl, 'outrigger_breaker_rejections_total', { breaker: 'gone' })).toBeUndefined();
  });

  it('lets an in-flight request finish under the config it started with', async () => {
    const slow = await startUpstream(slowBody(12, 100));
    cleanups.push(() => slow.close());
    const fast = await upstream('new');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    writeFileSync(path, yaml({ upstreams: { old: { endpoints: [slow.url] } }, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'old', bodyTimeout: '5s' }] }));
    const px = await startAt(path, false);

    // Stream the slow response; reload (removing its upstream altogether) after the first chunk.
    const chunks: string[] = [];
    const done = new Promise<{ status: number; body: string; complete: boolean }>((resolve, reject) => {
      const r = httpRequest({ host: '127.0.0.1', port: px.app.proxy.port, path: '/stream', agent: false }, (res) => {
        res.setEncoding('utf8');
        res.on('data', (c: string) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: chunks.join(''), complete: res.complete }));
        res.on('error', reject);
      });
      r.on('error', reject);
      r.end();
    });
    await waitFor(() => chunks.length > 0, { timeout: 5000, what: 'the first chunk' });
    writeFileSync(path, yaml({ upstreams: { fresh: { endpoints: [fast.url] } }, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'fresh' }] }));
    expect((await postReload(px.adminUrl)).status).toBe(200);

    // New requests use the new config at once, while the old stream is still going.
    expect((await req(px.url)).body).toBe('new');
    expect(chunks.join('')).not.toContain('chunk11');

    const res = await done;
    expect(res.status).toBe(200);
    expect(res.complete).toBe(true);
    expect(res.body).toBe(Array.from({ length: 12 }, (_, i) => `chunk${i}\n`).join(''));
    // The retired pool closes once the stream is done: no socket to the old upstream stays.
    await waitFor(() => slow.openSockets() === 0, { timeout: 5000, what: 'the retired pool to close its socket' });
  });

  it('lets an in-flight request retry on the upstream it started with, after a reload removed it', async () => {
    // The first attempt fails with a retriable 503; the retry comes after a long backoff.
    const flaky = await startUpstream(failFirst(1, 503));
    cleanups.push(() => flaky.close());
    const fresh = await upstream('new');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    const retry = { attempts: 1, backoff: { base: '1500ms', max: '1500ms', jitter: 'none' } };
    const oldCfg = (timeout: string) => ({ upstreams: { old: { endpoints: [flaky.url] } }, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'old', retry, timeout }] });
    writeFileSync(path, yaml(oldCfg('10s')));
    const px = await startAt(path, false);

    const pending = req(px.url, { path: '/retried' });
    await waitFor(() => flaky.seen.length === 1, { timeout: 5000, what: 'the first attempt' });
    // Two reloads during the backoff: the first keeps the upstream (a newer runtime now
    // shares its pool), the second removes it while the oldest runtime still needs it.
    writeFileSync(path, yaml(oldCfg('11s')));
    expect((await postReload(px.adminUrl)).status).toBe(200);
    writeFileSync(path, yaml({ upstreams: { fresh: { endpoints: [fresh.url] } }, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'fresh' }] }));
    expect((await postReload(px.adminUrl)).status).toBe(200);
    expect((await req(px.url)).body).toBe('new');
    expect(flaky.seen).toHaveLength(1);

    const res = await pending;
    expect(res.status).toBe(200);
    expect(res.body).toBe('ok 2');
    expect(res.headers['x-outrigger-attempts']).toBe('2');
    expect(flaky.seen.map((r) => r.url)).toEqual(['/retried', '/retried']);
  });

  it('lets a request whose body is still uploading finish on the upstream it was routed to', async () => {
    const old = await startUpstream((_req, res, _n, body) => ok(`old got ${body}`)(_req, res, _n, body));
    cleanups.push(() => old.close());
    const fresh = await upstream('new');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    writeFileSync(path, yaml({ upstreams: { old: { endpoints: [old.url] } }, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'old' }] }));
    const px = await startAt(path, false);

    // A small body is buffered (for retries) before anything goes upstream.
    let sendRest = (): void => undefined;
    const res = new Promise<{ status: number; body: string }>((resolve, reject) => {
      const r = httpRequest({ host: '127.0.0.1', port: px.app.proxy.port, method: 'PUT', path: '/up', headers: { 'content-length': '8' }, agent: false }, (m) => {
        let body = '';
        m.setEncoding('utf8');
        m.on('data', (c: string) => (body += c));
        m.on('end', () => resolve({ status: m.statusCode ?? 0, body }));
      });
      r.on('error', reject);
      r.write('half');
      sendRest = () => void r.end('done');
    });
    await waitFor(() => px.app.state.inflight === 1, { timeout: 5000, what: 'the request to reach the proxy' });
    writeFileSync(path, yaml({ upstreams: { fresh: { endpoints: [fresh.url] } }, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'fresh' }] }));
    expect((await postReload(px.adminUrl)).status).toBe(200);
    expect((await req(px.url)).body).toBe('new');
    sendRest();
    expect(await res).toEqual({ status: 200, body: 'old got halfdone' });
  });

  it('reloads on POST /reload: new hash and loadedAt on /health, one success, one info line', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    writeFileSync(path, yaml(routeTo(a.url)));
    const px = await startAt(path, false);
    const before = await health(px.adminUrl);
    expect(before.config.path).toBe(path);
    expect(before.config.hash).toMatch(/^[0-9a-f]{64}$/);

    // Nothing changed: nothing to apply, count or log.
    expect(await postReload(px.adminUrl)).toMatchObject({ status: 200, body: { result: 'success', config: { hash: before.config.hash } } });
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'success' })).toBe(0);
    expect(reloadLogs(px.logs, 'info')).toHaveLength(0);

    writeFileSync(path, yaml(routeTo(b.url)));
    // Without a watcher, the file change alone does nothing.
    expect((await req(px.url)).body).toBe('A');
    await waitFor(() => Date.now() > Date.parse(before.config.loadedAt) + 5, { what: 'the clock to move' });
    const posted = await postReload(px.adminUrl);
    expect(posted.status).toBe(200);
    expect(posted.body.result).toBe('success');
    const after = await health(px.adminUrl);
    expect(posted.body.config?.hash).toBe(after.config.hash);
    expect(after.config.hash).not.toBe(before.config.hash);
    expect(Date.parse(after.config.loadedAt)).toBeGreaterThan(Date.parse(before.config.loadedAt));
    expect((await req(px.url)).body).toBe('B');
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'success' })).toBe(1);
    const infos = reloadLogs(px.logs, 'info');
    expect(infos).toHaveLength(1);
    expect(infos[0]).toMatchObject({ hash: after.config.hash, routes: 1 });
  });

  it('logs a listener change as needing a restart, and keeps the old listeners', async () => {
    const a = await upstream('A');
    const b = await upstream('B');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    writeFileSync(path, yaml(routeTo(a.url)));
    const px = await startAt(path, false);
    writeFileSync(path, stringify({ ...LOOPBACK_LISTENERS, listen: '127.0.0.1:1', ...routeTo(b.url) }));
    expect((await postReload(px.adminUrl)).status).toBe(200);
    expect((await req(px.url)).body).toBe('B');
    expect(reloadLogs(px.logs, 'info')[0]).toMatchObject({ restartNeeded: ['listen'] });
  });

  it('leaves open WebSocket connections untouched by a reload', async () => {
    const wsUp = await startWsUpstream();
    cleanups.push(() => wsUp.close());
    const other = await upstream('http');
    const dir = tempDir();
    const path = join(dir, 'outrigger.yaml');
    writeFileSync(path, yaml({ upstreams: { ws: { endpoints: [wsUp.url] } }, routes: [{ name: 'chat', match: { pathPrefix: '/' }, upstream: 'ws', websocket: { idleTimeout: '60s' } }] }));
    const px = await startAt(path, false);

    const ws = await new Promise<WebSocket>((resolve, reject) => {
      const c = new WebSocket(`ws://127.0.0.1:${px.app.proxy.port}/chat`);
      c.once('open', () => resolve(c));
      c.once('error', reject);
    });
    cleanups.push(() => {
      ws.terminate();
    });
    const closes: number[] = [];
    ws.on('close', (code) => closes.push(code));
    const echo = (msg: string) =>
      new Promise<string>((resolve) => {
        ws.once('message', (d: Buffer) => resolve(d.toString()));
        ws.send(msg);
      });
    expect(await echo('before')).toBe('before');

    // A reload that removes the WebSocket route, its upstream, and changes its settings.
    writeFileSync(path, yaml({ upstreams: { other: { endpoints: [other.url] } }, routes: [{ name: 'plain', match: { pathPrefix: '/' }, upstream: 'other', websocket: { idleTimeout: '100ms' } }] }));
    expect((await postReload(px.adminUrl)).status).toBe(200);
    expect((await req(px.url)).body).toBe('http');

    for (let i = 0; i < 5; i++) expect(await echo(`after ${i}`)).toBe(`after ${i}`);
    // Longer than the new route's idle timeout: the connection keeps the settings it opened with.
    await sleep(400);
    expect(await echo('later')).toBe('later');
    expect(ws.readyState).toBe(WebSocket.OPEN);
    expect(closes).toEqual([]);
    expect(wsUp.connections).toHaveLength(1);
    expect(await metricValue(px.metricsUrl, 'outrigger_websocket_connections', { route: 'chat' })).toBe(1);
  });
});
