// Issue 9: a reload onto an empty file (a truncate-then-write caught half way, a blank
// ConfigMap) is refused: the old config keeps serving, POST /reload answers 422.
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { metricValue, oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { ok, startUpstream } from '../helpers/upstream.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();

describe('refused reloads', () => {
  it('an empty or list-rooted file is refused with 422; routes keep serving; counted as failure', async () => {
    const up = track(await startUpstream(ok('still here')));
    const px = track(await startProxy(oneRoute(up.url)));
    for (const [text, problem] of [['', 'the config file is empty'], ['  \n', 'the config file is empty'], ['- a\n', 'the top level must be a mapping, got a list']] as const) {
      writeFileSync(px.configPath, text);
      const r = await fetch(`${px.adminUrl}/reload`, { method: 'POST' });
      expect(r.status).toBe(422);
      const body = (await r.json()) as { problems: string[] };
      expect(body.problems).toEqual([problem]);
      expect((await req(px.url, { path: '/x' })).body).toBe('still here');
    }
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'failure' })).toBe(3);
    expect(await metricValue(px.metricsUrl, 'outrigger_config_reloads_total', { result: 'success' })).toBe(0);
  });
});
