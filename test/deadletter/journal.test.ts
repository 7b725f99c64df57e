// The journal alone: eviction at both bounds, a torn last record after a crash, compaction.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal, type DeadLetterEntry } from '../../src/deadletter/journal.js';
import { UlidFactory } from '../../src/deadletter/ulid.js';

const dirs: string[] = [];
const open: Journal[] = [];
afterEach(async () => {
  for (const j of open.splice(0)) await j.close();
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const ids = new UlidFactory();
function entry(body = 'x'): DeadLetterEntry {
  return { id: ids.next(), time: new Date().toISOString(), route: 'r', method: 'POST', path: '/p', headers: [['content-type', 'text/plain']], body: Buffer.from(body).toString('base64'), bodyKept: true, bodyBytes: body.length, code: 'OUTRIGGER_BREAKER_OPEN', reason: 'breaker-open', idempotencyKey: null, delivery: 'not-sent', replayed: null, attempts: [] };
}

function setup(over: Partial<ConstructorParameters<typeof Journal>[1]> = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-journal-'));
  dirs.push(dir);
  const settings = { enabled: true, dir, maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, maxBodyBytes: 65536, on: ['breaker-open' as const], redactHeaders: [], syncInterval: 5, ...over };
  const evicted: Array<[string, string]> = [];
  const make = () => {
    const j = new Journal('r', settings, { evicted: (e, why) => evicted.push([e.id, why]), bytes: () => {}, error: (err) => { throw err; } });
    open.push(j);
    return j;
  };
  return { dir, settings, evicted, make };
}

describe('dead-letter journal', () => {
  it('evicts the oldest past maxEntries, and the eviction survives a restart', async () => {
    const { evicted, make } = setup({ maxEntries: 3 });
    const j = make();
    const made = Array.from({ length: 5 }, () => entry());
    for (const e of made) j.record(e);
    expect(j.size).toBe(3);
    expect(evicted).toEqual([[made[0]?.id, 'maxEntries'], [made[1]?.id, 'maxEntries']]);
    await j.close();
    open.pop();
    const again = make();
    expect([...again.summaries()].map((s) => s.id)).toEqual(made.slice(2).map((e) => e.id));
  });

  it('evicts the oldest past maxBytes', async () => {
    const { evicted, make } = setup({ maxBytes: 2048 });
    const j = make();
    const made = Array.from({ length: 10 }, () => entry('y'.repeat(300)));
    for (const e of made) j.record(e);
    expect(j.stats().bytes).toBeLessThanOrEqual(2048);
    expect(evicted.length).toBeGreaterThan(0);
    expect(evicted.every(([, why]) => why === 'maxBytes')).toBe(true);
    const kept = [...j.summaries()].map((s) => s.id);
    expect(kept).toEqual(made.slice(made.length - kept.length).map((e) => e.id));
  });

  it('skips, counts and cuts off a torn last record', async () => {
    const { settings, make } = setup();
    const j = make();
    const a = entry('a');
    const b = entry('b');
    j.record(a);
    j.record(b);
    await j.flush();
    expect(j.get(b.id)?.acknowledged).toBe(true);
    await j.close();
    open.pop();
    const file = j.file;
    appendFileSync(file, '0badc0de {"t":"e","e":{"id":"01J');
    const again = make();
    expect(again.tornRecords).toBe(1);
    expect(again.size).toBe(2);
    const c = entry('c');
    again.record(c);
    await again.flush();
    await again.close();
    open.pop();
    expect(readFileSync(file, 'utf8').split('\n').filter(Boolean)).toHaveLength(3);
    const third = make();
    expect(third.tornRecords).toBe(0);
    expect([...third.summaries()].map((s) => s.id)).toEqual([a.id, b.id, c.id]);
    expect(settings.dir).toBeTruthy();
  });

  it('compacts by writing a new file and renaming it, keeping the replay state', async () => {
    const { make } = setup();
    const j = make();
    const made = Array.from({ length: 50 }, () => entry('z'.repeat(2000)));
    for (const e of made) j.record(e);
    j.markReplayed(made[49]?.id as string, 201);
    for (const e of made.slice(0, 48)) j.delete(e.id);
    await j.flush();
    expect(j.stats().compactions).toBeGreaterThan(0);
    expect(statSync(j.file).size).toBe(j.stats().fileBytes);
    await j.close();
    open.pop();
    const again = make();
    expect(again.size).toBe(2);
    expect(again.get(made[49]?.id as string)?.replayed?.status).toBe(201);
  });

  it('makes strictly increasing ULIDs', () => {
    const f = new UlidFactory(() => 1_700_000_000_000);
    const a = f.next();
    const b = f.next();
    expect(a).toHaveLength(26);
    expect(b > a).toBe(true);
  });
});
