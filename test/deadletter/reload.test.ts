// A reload onto a dead-letter config whose journal cannot be opened is refused like an
// invalid config: `check` names it, the reload answers the problem, and the proxy keeps
// serving the previous config (it once crashed the process from inside Runtime.build).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { stringify } from 'yaml';
import { afterEach, describe, expect, it } from 'vitest';
import { start } from '../../src/app.js';
import { loadConfigText } from '../../src/config/load.js';
import { LOOPBACK_LISTENERS } from '../helpers/proxy.js';
import { ok, startUpstream } from '../helpers/upstream.js';
import { req } from '../helpers/http.js';
import { useCleanup } from '../helpers/cleanup.js';

const track = useCleanup();
const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe('a dead-letter journal that cannot be opened', () => {
  it('is refused by check, and a reload onto it keeps the previous config serving', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-dl-reload-'));
    dirs.push(dir);
    const dl = join(dir, 'dl');
    mkdirSync(dl);
    // Something that is not a file where the route's journal would be.
    mkdirSync(join(dl, 'r1.deadletters.ndjson'));
    const up = track(await startUpstream(ok('fine')));
    const base = { ...LOOPBACK_LISTENERS, upstreams: { up: { endpoints: [up.url] } } };
    const plain = { ...base, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up' }] };
    const recording = { ...base, routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', deadLetter: { enabled: true, dir: dl } }] };

    expect(() => loadConfigText(stringify(recording), join(dir, 'c.yaml'))).toThrow(/r1\.deadletters\.ndjson.*not a regular file/);

    const configPath = join(dir, 'c.yaml');
    writeFileSync(configPath, stringify(plain));
    const app = await start({ configPath, env: {}, logger: pino({ level: 'silent' }), watch: false });
    track({ close: () => app.close() });
    writeFileSync(configPath, stringify(recording));
    const problems = await app.reload();
    expect(problems.join('\n')).toMatch(/not a regular file/);
    const r = await req(`http://127.0.0.1:${app.proxy.port}`, { path: '/x' });
    expect(r.status).toBe(200);
    expect(r.body).toBe('fine');
  });
});
