import { describe, expect, it } from 'vitest';
import { ok, refusedPort, resetMidBody, startUpstream } from '../helpers/upstream.js';
import { oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';
import { waitFor } from '../helpers/wait.js';

const track = useCleanup();
const accessLines = (logs: Array<Record<string, unknown>>) => logs.filter((l) => l.access === true);

describe('logs', () => {
  it('writes one start-up line with the listen addresses and the route count', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    const lines = px.logs.filter((l) => l.msg === 'outrigger listening');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({
      level: 'info',
      listen: `127.0.0.1:${px.app.proxy.port}`,
      admin: `127.0.0.1:${px.app.admin.port}`,
      metrics: `127.0.0.1:${px.app.metricsAddress.port}`,
      routes: 1,
    });
  });

  it('writes no access log by default', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url)));
    await req(px.url, { path: '/a' });
    expect(accessLines(px.logs)).toEqual([]);
  });

  it('access log: route, status, attempts, duration, request id; never Authorization or Cookie values', async () => {
    const up = track(await startUpstream(ok('x', 201)));
    const px = track(await startProxy(oneRoute(up.url, {}, { log: { level: 'info', accessLog: true } })));
    await req(px.url, { path: '/a?token=q', headers: { 'x-request-id': 'rid-7', authorization: 'Bearer sekret-auth', cookie: 'session=sekret-cookie' } });
    const [line, ...rest] = accessLines(px.logs);
    expect(rest).toEqual([]);
    expect(line).toMatchObject({ route: 'r1', method: 'GET', path: '/a', status: 201, attempts: 1, requestId: 'rid-7' });
    expect(typeof line!.durationMs).toBe('number');
    const serialized = JSON.stringify(px.logs);
    expect(serialized).not.toContain('sekret-auth');
    expect(serialized).not.toContain('sekret-cookie');
  });

  it('access log names the error code, the fallback, a truncated body, and a client that left (499)', async () => {
    const dead = await refusedPort();
    const mid = track(await startUpstream(resetMidBody));
    const px = track(
      await startProxy({
        log: { level: 'info', accessLog: true },
        upstreams: { dead: { endpoints: [`http://127.0.0.1:${dead}`] }, mid: { endpoints: [mid.url] } },
        defaults: { retry: { attempts: 0 } },
        routes: [
          { name: 'err', match: { pathPrefix: '/err' }, upstream: 'dead' },
          { name: 'fb', match: { pathPrefix: '/fb' }, upstream: 'dead', fallback: { on: ['upstream-unavailable'], body: 'x' } },
          { name: 'mid', match: { pathPrefix: '/mid' }, upstream: 'mid' },
        ],
      }),
    );
    await req(px.url, { path: '/err' });
    await req(px.url, { path: '/fb' });
    await req(px.url, { path: '/mid' });
    await req(px.url, { path: '/none', headers: { host: 'h' } }).catch(() => null);
    await waitFor(() => accessLines(px.logs).length === 4);
    const byRoute = Object.fromEntries(accessLines(px.logs).map((l) => [String(l.route), l]));
    expect(byRoute.err).toMatchObject({ status: 502, error: 'OUTRIGGER_UPSTREAM_UNAVAILABLE' });
    expect(byRoute.fb).toMatchObject({ status: 200, fallback: 'upstream-unavailable' });
    expect(byRoute.mid).toMatchObject({ status: 200, error: 'response_truncated' });
    expect(byRoute.null).toMatchObject({ status: 404, error: 'OUTRIGGER_NO_ROUTE', route: null });
  });

  it('OUTRIGGER_LOG_LEVEL overrides the config level', async () => {
    const { effectiveLevel } = await import('../../src/log.js');
    expect(effectiveLevel('info', { OUTRIGGER_LOG_LEVEL: 'debug' })).toBe('debug');
    expect(effectiveLevel('info', { OUTRIGGER_LOG_LEVEL: 'WARN' })).toBe('warn');
    expect(effectiveLevel('warn', { OUTRIGGER_LOG_LEVEL: 'nonsense' })).toBe('warn');
    expect(effectiveLevel('error', {})).toBe('error');
  });
});

describe('keep-alive from the client side', () => {
  it('serves many requests on one client connection', async () => {
    const up = track(await startUpstream(ok('k')));
    const px = track(await startProxy(oneRoute(up.url)));
    const agentMod = await import('node:http');
    const agent = new agentMod.Agent({ keepAlive: true, maxSockets: 1 });
    track({ close: () => agent.destroy() });
    const sockets = new Set<unknown>();
    for (let i = 0; i < 5; i++) {
      const body = await new Promise<string>((resolve, reject) => {
        const r = agentMod.request({ host: '127.0.0.1', port: new URL(px.url).port, path: '/a', agent }, (res) => {
          sockets.add(res.socket);
          let s = '';
          res.on('data', (c: Buffer) => (s += c.toString()));
          res.on('end', () => resolve(s));
        });
        r.on('error', reject);
        r.end();
      });
      expect(body).toBe('k');
    }
    expect(sockets.size).toBe(1);
  });
});
