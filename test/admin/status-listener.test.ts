// The status listener: read-only probes on their own address, nothing else.
import { describe, expect, it } from 'vitest';
import { oneRoute, startProxy } from '../helpers/proxy.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();

describe('status listener', () => {
  it('serves /livez, /readyz and /health, and refuses everything else', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1', {}, { status: { listen: '127.0.0.1:0' } })));
    const st = px.app.status;
    expect(st).not.toBeNull();
    const url = `http://127.0.0.1:${st?.port}`;
    expect(st?.port).not.toBe(px.app.admin.port);
    for (const p of ['/livez', '/readyz', '/health']) {
      const r = await req(url, { path: p });
      expect(r.status, p).toBe(200);
    }
    const health = JSON.parse((await req(url, { path: '/health' })).body) as { breakers?: unknown };
    expect(health.breakers).toBeDefined();
    for (const p of ['/config', '/breakers', '/', '/stats', '/events']) {
      const r = await req(url, { path: p });
      expect(r.status, p).toBe(404);
    }
    const reset = await req(url, { method: 'POST', path: '/breakers/default/isolate' });
    expect(reset.status).toBe(405);
    const reload = await req(url, { method: 'POST', path: '/reload' });
    expect(reload.status).toBe(405);
    // The admin listener still has the probes, for compatibility.
    expect((await req(px.adminUrl, { path: '/readyz' })).status).toBe(200);
  });

  it('is not started without a status section', async () => {
    const px = track(await startProxy(oneRoute('http://127.0.0.1:1')));
    expect(px.app.status).toBeNull();
  });
});
