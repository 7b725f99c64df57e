import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { req } from '../helpers/http.js';
import { oneRoute, startProxy } from '../helpers/proxy.js';
import { ok, startUpstream } from '../helpers/upstream.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();
const havePromtool = spawnSync('promtool', ['--version']).status === 0;
if (!havePromtool) console.warn('promtool not found (Debian package prometheus; .ci/run installs it): skipping the promtool check');

describe.skipIf(!havePromtool)('promtool check metrics', () => {
  it('accepts a live proxy /metrics with the default process metrics on', async () => {
    const up = track(await startUpstream(ok()));
    const px = track(await startProxy(oneRoute(up.url), { processMetrics: true }));
    await req(px.url, { path: '/x' });
    const body = (await req(px.metricsUrl, { path: '/metrics' })).body;
    expect(body).toContain('process_cpu_user_seconds_total');
    expect(body).toContain('nodejs_eventloop_lag_seconds');
    const r = spawnSync('promtool', ['check', 'metrics'], { input: body, encoding: 'utf8', timeout: 30_000 });
    expect(`${r.stdout}${r.stderr}`).toBe('');
    expect(r.status).toBe(0);
  });
});
