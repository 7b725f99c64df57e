// kill -9 in the middle of a burst of dead letters, then restart on the same journal:
// every entry the proxy had acknowledged (fsync'd) is still there, and a torn tail is counted.
import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { req } from '../helpers/http.js';
import { waitFor } from '../helpers/wait.js';

const MAIN_JS = join(import.meta.dirname, '../../dist/main.js');
const children: ChildProcess[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

async function boot(configPath: string): Promise<{ child: ChildProcess; proxy: string; admin: string; logs: Array<Record<string, unknown>> }> {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH };
  const child = spawn(process.execPath, [MAIN_JS, '--config', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  const logs: Array<Record<string, unknown>> = [];
  let partial = '';
  child.stdout?.on('data', (c: Buffer) => {
    partial += c.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      try {
        logs.push(JSON.parse(l) as Record<string, unknown>);
      } catch {
        /* not a log line */
      }
    }
  });
  const up = await waitFor(() => logs.find((l) => l.msg === 'outrigger listening') as { listen: string; admin: string } | undefined, { timeout: 10_000, what: 'the start-up line' });
  return { child, proxy: `http://${up.listen}`, admin: `http://${up.admin}`, logs };
}

async function list(admin: string): Promise<any> {
  const u = new URL(admin);
  const r = await req(u.origin, { path: '/dead-letters?limit=1000' });
  return JSON.parse(r.body);
}

describe('dead-letter journal across a crash', () => {
  it('keeps every acknowledged entry after kill -9 and counts the torn tail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outrigger-crash-'));
    dirs.push(dir);
    const journalDir = join(dir, 'journal');
    const { mkdirSync } = await import('node:fs');
    mkdirSync(journalDir);
    const configPath = join(dir, 'outrigger.yaml');
    writeFileSync(
      configPath,
      stringify({
        listen: '127.0.0.1:0',
        admin: { listen: '127.0.0.1:0' },
        metrics: { listen: '127.0.0.1:0' },
        upstreams: { down: { endpoints: ['http://127.0.0.1:9'], connectTimeout: '100ms' } },
        routes: [{ name: 'w', match: { pathPrefix: '/' }, upstream: 'down', retry: { attempts: 0 }, deadLetter: { enabled: true, dir: 'journal', syncInterval: '20ms' } }],
      }),
    );
    const first = await boot(configPath);
    const u = new URL(first.proxy);
    // A burst in the background; acknowledged ids are collected from the admin list meanwhile.
    let stop = false;
    const burst = (async () => {
      let n = 0;
      while (!stop && n < 2000) {
        await Promise.all(Array.from({ length: 8 }, () => req(u.origin, { method: 'POST', path: `/w/${n++}`, body: 'payload' }).catch(() => null)));
      }
    })();
    const acknowledged = new Set<string>();
    await waitFor(
      async () => {
        for (const e of (await list(first.admin)).entries) if (e.acknowledged) acknowledged.add(e.id);
        return acknowledged.size >= 40;
      },
      { timeout: 10_000, interval: 20, what: 'acknowledged entries' },
    );
    first.child.kill('SIGKILL');
    stop = true;
    await burst;
    await new Promise((r) => first.child.once('exit', r).exitCode !== null && r(null));
    // A crash mid-write leaves a partial last line: simulate the torn write on top.
    const [file] = readdirSync(journalDir).filter((f) => f.endsWith('.ndjson'));
    appendFileSync(join(journalDir, file as string), '1234abcd {"t":"e","e":{"id":"01HX');

    const second = await boot(configPath);
    const after = await list(second.admin);
    const ids = new Set(after.entries.map((e: { id: string }) => e.id));
    for (const id of acknowledged) expect(ids.has(id)).toBe(true);
    expect(after.journals[0].tornRecords).toBe(1);
    expect(second.logs.some((l) => l.tornRecords === 1)).toBe(true);
    second.child.kill('SIGKILL');
  }, 30_000);
});
