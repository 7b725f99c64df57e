// The package entry: importing it starts nothing, and start() from it runs a proxy.
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import type * as Entry from '../src/index.js';
import { useCleanup } from './helpers/cleanup.js';

const track = useCleanup();

describe('package entry', () => {
  it('exports start() and the config loader, and importing it opens no listener', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
    const pkg = createRequire(import.meta.url)('../package.json') as { exports: Record<string, { default: string }> };
    const entry = pkg.exports['.']?.default;
    expect(entry).toBe('./dist/index.js');
    const mod = (await import(`../${entry}`)) as typeof Entry;
    expect(typeof mod.start).toBe('function');
    expect(typeof mod.loadConfigText).toBe('function');
    const after = process.getActiveResourcesInfo().filter((r) => r === 'TCPServerWrap').length;
    expect(after).toBe(before);
  });

  it('start() from the entry serves on the addresses it is given', async () => {
    const { mkdtempSync, writeFileSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const built = './dist/index.js';
    const mod = (await import(`.${built}`)) as typeof Entry;
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-entry-'));
    const configPath = join(dir, 'outrigger.yaml');
    writeFileSync(configPath, 'listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\nmetrics: { listen: 127.0.0.1:0 }\nlog: { level: silent }\nroutes: []\n');
    const app = await mod.start({ configPath, watch: false, processMetrics: false });
    track({ close: () => app.close() });
    const r = await fetch(`http://127.0.0.1:${app.admin.port}/livez`);
    expect(r.status).toBe(200);
  });
});
