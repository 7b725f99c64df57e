// A record whose append failed (ENOSPC) is never reported acknowledged, even once a later
// record is fsync'd; a short write is completed, not left half a line.
import { describe, expect, it, vi } from 'vitest';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let failNext = 0;
let shortNext = 0;
vi.mock('node:fs', async (orig) => {
  const real = await orig<typeof fs>();
  return {
    ...real,
    write: (fd: number, buf: Buffer, off: number, len: number, pos: null, cb: (e: Error | null, n?: number) => void) => {
      if (failNext > 0) {
        failNext--;
        const e = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
        setImmediate(() => cb(e));
        return;
      }
      // A short write: only the first 5 bytes go out this time.
      if (shortNext > 0 && len > 5) {
        shortNext--;
        return real.write(fd, buf, off, 5, pos, cb as never);
      }
      return real.write(fd, buf, off, len, pos, cb as never);
    },
  };
});

describe('journal: a record whose write failed', () => {
  it('is not acknowledged when a later record is fsynced; a short write is completed', async () => {
    const { Journal } = await import('../../src/deadletter/journal.js');
    const { UlidFactory } = await import('../../src/deadletter/ulid.js');
    const ids = new UlidFactory();
    const e = (): any => ({ id: ids.next(), time: new Date().toISOString(), route: 'r', method: 'POST', path: '/p', headers: [], body: '', bodyKept: true, bodyBytes: 0, code: 'OUTRIGGER_BREAKER_OPEN', reason: 'breaker-open', idempotencyKey: null, delivery: 'not-sent', replayed: null, attempts: [] });
    const dir = mkdtempSync(join(tmpdir(), 'j-'));
    const settings = { enabled: true, dir, maxEntries: 100, maxBytes: 1 << 20, maxBodyBytes: 1024, on: ['breaker-open'], redactHeaders: [], syncInterval: 5 } as any;
    const errors: string[] = [];
    const j = new Journal('r', settings, { evicted: () => {}, bytes: () => {}, error: (err: any, what: string) => errors.push(`${what}: ${err.code}`) });
    const a = e(); const b = e();
    failNext = 1;
    j.record(a);   // write fails (ENOSPC)
    j.record(b);   // write succeeds
    await j.flush();
    expect(errors).toEqual(['appending to the journal: ENOSPC']);
    const file = join(dir, 'r.deadletters.ndjson');
    expect(readFileSync(file, 'utf8').includes(a.id)).toBe(false);
    expect(j.get(a.id)?.acknowledged).toBe(false);
    expect(j.get(b.id)?.acknowledged).toBe(true);
    const c = e();
    shortNext = 1;
    j.record(c);
    await j.flush();
    expect(j.get(c.id)?.acknowledged).toBe(true);
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines.at(-1)).toContain(c.id);
    expect(lines.every((l) => l.length > 10)).toBe(true);
    await j.close();
    rmSync(dir, { recursive: true, force: true });
  });
});
