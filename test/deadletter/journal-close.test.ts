// The journal closed right after a clear() (DELETE /dead-letters) or a delete: close() waits
// for the compaction that clear() queued, so reopening at once (a restart) finds the journal
// empty, and no compaction runs on (or closes) a file descriptor after close().
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
  return { id: ids.next(), time: new Date().toISOString(), route: 'r', method: 'POST', path: '/p', headers: [], body: Buffer.from(body).toString('base64'), bodyKept: true, bodyBytes: body.length, code: 'OUTRIGGER_BREAKER_OPEN', reason: 'breaker-open', idempotencyKey: null, delivery: 'not-sent', replayed: null, attempts: [] };
}

function setup() {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-journal-close-'));
  dirs.push(dir);
  const settings = { enabled: true, dir, maxEntries: 10_000, maxBytes: 64 * 1024 * 1024, maxBodyBytes: 65536, on: ['breaker-open' as const], redactHeaders: [], syncInterval: 5 };
  const errors: unknown[] = [];
  const make = () => {
    const j = new Journal('r', settings, { evicted: () => {}, bytes: () => {}, error: (err) => errors.push(err) });
    open.push(j);
    return j;
  };
  return { errors, make };
}

describe('dead-letter journal: close after clear or delete', () => {
  it.each([
    ['acknowledged', true],
    ['still pending', false],
  ])('close() right after clear() leaves an empty journal (entries %s)', async (_what, flushFirst) => {
    const { errors, make } = setup();
    const j = make();
    for (let i = 0; i < 20; i++) j.record(entry('p'.repeat(200)));
    if (flushFirst) await j.flush();
    expect(j.clear()).toBe(20);
    await j.close();
    // When close() resolves the compaction is done: the file is empty and nothing is left over.
    expect(readFileSync(j.file, 'utf8')).toBe('');
    expect(existsSync(`${j.file}.compact`)).toBe(false);
    const again = make();
    expect(again.size).toBe(0);
    expect(again.tornRecords + again.corruptRecords).toBe(0);
    // The reopened journal's descriptor is its own: appends reach the file.
    const e = entry('after');
    again.record(e);
    await again.flush();
    expect(readFileSync(again.file, 'utf8')).toContain(e.id);
    expect(errors).toEqual([]);
  });

  it('close() right after delete() keeps the deletion', async () => {
    const { errors, make } = setup();
    const j = make();
    const made = Array.from({ length: 3 }, () => entry());
    for (const e of made) j.record(e);
    await j.flush();
    j.delete(made[1]?.id as string);
    await j.close();
    const again = make();
    expect([...again.summaries()].map((s) => s.id)).toEqual([made[0]?.id, made[2]?.id]);
    expect(errors).toEqual([]);
  });

  it('flush() waits for a compaction in progress', async () => {
    const { make } = setup();
    const j = make();
    for (let i = 0; i < 10; i++) j.record(entry());
    await j.flush();
    j.clear();
    await j.flush();
    expect(j.stats()).toMatchObject({ entries: 0, fileBytes: 0, pending: 0, compactions: 1 });
    expect(readFileSync(j.file, 'utf8')).toBe('');
  });
});
