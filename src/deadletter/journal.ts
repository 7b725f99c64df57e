// The dead-letter journal of one route: an append-only NDJSON file in `deadLetter.dir`,
// one record per line, each line `<crc32 as 8 hex digits> <json>\n`. Records: `e` (an
// entry, with its replay state folded in when compaction rewrites it), `r` (replayed),
// `a` (a replay attempt that did not succeed), `d` (deleted or evicted).
//
// - Appends never block the request path: `record()` updates memory and queues the line;
//   one `write` per record runs in the background, in order.
// - fsync runs in batches: the first write after a sync arms a timer of `syncInterval`, and
//   every record written before that fdatasync starts is *acknowledged* when it resolves.
// - On open, a last line without its newline or with a bad checksum (a torn write) is
//   skipped, counted and cut off the file; a bad line elsewhere is skipped and counted, and
//   the file is compacted.
// - Past maxEntries or maxBytes the oldest entries are evicted (a `d` record each).
// - Compaction writes the live entries to `<file>.compact`, fsyncs it, renames it over the
//   journal and fsyncs the directory: a crash leaves either the old file or the new one.
//
// The live entries are also held in memory (bounded by maxBytes), so reads never touch the disk.
import { deadLetterJournalPath } from '../config/load.js';
import { close, constants as fsc, fdatasync, fsyncSync, ftruncateSync, openSync, readFileSync, write } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { crc32 } from 'node:zlib';
import type { EffectiveRoute } from '../config/load.js';

export type { DeadLetterEntry, Delivery } from '../exchange/dead-letter-entry.js';
import type { DeadLetterEntry } from '../exchange/dead-letter-entry.js';

/** An entry in a list: no body, and whether its record is on disk for sure. */
export type DeadLetterSummary = Omit<DeadLetterEntry, 'body'> & { acknowledged: boolean };

export interface JournalStats {
  route: string;
  file: string;
  entries: number;
  /** Bytes of the live entries' records. */
  bytes: number;
  fileBytes: number;
  /** Records skipped when the journal was opened: a torn last record, and bad lines elsewhere. */
  tornRecords: number;
  corruptRecords: number;
  evicted: number;
  replayed: number;
  /** Records appended but not yet fsync'd. */
  pending: number;
  compactions: number;
}

export interface JournalHooks {
  evicted(entry: DeadLetterEntry, why: 'maxEntries' | 'maxBytes'): void;
  bytes(fileBytes: number): void;
  error(err: unknown, what: string): void;
}

type Settings = EffectiveRoute['deadLetter'];

interface Live {
  entry: DeadLetterEntry;
  /** Sequence number of the record that made it durable. */
  seq: number;
  size: number;
}

type Task = { line: Buffer; seq: number } | 'compact';

const COMPACT_SLACK = 64 * 1024;

function encode(rec: unknown): Buffer {
  const json = JSON.stringify(rec);
  const crc = crc32(json).toString(16).padStart(8, '0');
  return Buffer.from(`${crc} ${json}\n`);
}

function decode(line: string): Record<string, unknown> | null {
  if (line.length < 10 || line.charAt(8) !== ' ') return null;
  const json = line.slice(9);
  if (crc32(json).toString(16).padStart(8, '0') !== line.slice(0, 8)) return null;
  try {
    const v = JSON.parse(json) as unknown;
    return v !== null && typeof v === 'object' ? (v as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function journalFile(dir: string, route: string): string {
  return deadLetterJournalPath(dir, route);
}

export class Journal {
  readonly file: string;
  private fd: number;
  private readonly live = new Map<string, Live>();
  private liveBytes = 0;
  private fileBytes = 0;
  /** Bytes of the records queued but not yet written. */
  private queuedBytes = 0;
  private seq = 0;
  /** Highest seq whose record has been written / fsync'd. */
  private written = 0;
  /** Records whose write failed: never acknowledged, though later ones are. */
  private readonly failed = new Set<number>();
  private acked = 0;
  private readonly queue: Task[] = [];
  private writing = false;
  private syncTimer: NodeJS.Timeout | null = null;
  private syncing: Promise<void> | null = null;
  private closed = false;
  private idleWaiters: Array<() => void> = [];
  readonly tornRecords: number = 0;
  readonly corruptRecords: number = 0;
  private evictedCount = 0;
  private replayedCount = 0;
  private compactions = 0;

  constructor(
    readonly route: string,
    private settings: Settings,
    private readonly hooks: JournalHooks,
  ) {
    this.file = journalFile(settings.dir, route);
    let text = '';
    try {
      text = readFileSync(this.file, 'latin1');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // latin1 keeps byte offsets equal to string offsets; each line is decoded as UTF-8 below.
    let good = 0;
    let torn = 0;
    let corrupt = 0;
    let pos = 0;
    while (pos < text.length) {
      const nl = text.indexOf('\n', pos);
      const last = nl === -1;
      const raw = text.slice(pos, last ? text.length : nl);
      const rec = last ? null : decode(Buffer.from(raw, 'latin1').toString('utf8'));
      if (rec === null) {
        if (last || text.indexOf('\n', nl + 1) === -1) torn++;
        else corrupt++;
      } else {
        this.apply(rec, Buffer.byteLength(raw, 'latin1') + 1);
        if (!last) good = nl + 1;
      }
      if (last) break;
      pos = nl + 1;
    }
    // A torn tail is only ever the last line; anything after `good` is cut, so the next
    // append starts on a fresh line.
    this.tornRecords = torn;
    this.corruptRecords = corrupt;
    this.fd = openSync(this.file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND, 0o600);
    if (good < text.length) {
      ftruncateSync(this.fd, good);
      fsyncSync(this.fd);
    }
    this.fileBytes = good;
    this.written = this.acked = this.seq;
    if (corrupt > 0) this.queue.push('compact');
    this.enforceBounds();
    this.hooks.bytes(this.fileBytes);
    this.pump();
  }

  /** New settings after a reload (same file). */
  configure(settings: Settings): void {
    this.settings = settings;
    this.enforceBounds();
  }

  // --- reads ----------------------------------------------------------------------

  get size(): number {
    return this.live.size;
  }

  get(id: string): (DeadLetterEntry & { acknowledged: boolean }) | undefined {
    const l = this.live.get(id);
    return l === undefined ? undefined : { ...l.entry, acknowledged: this.isAcked(l.seq) };
  }

  /** Entries oldest first, without bodies. */
  *summaries(): Generator<DeadLetterSummary> {
    for (const l of this.live.values()) {
      const { body: _b, ...rest } = l.entry;
      yield { ...rest, acknowledged: this.isAcked(l.seq) };
    }
  }

  stats(): JournalStats {
    return {
      route: this.route,
      file: this.file,
      entries: this.live.size,
      bytes: this.liveBytes,
      fileBytes: this.fileBytes,
      tornRecords: this.tornRecords,
      corruptRecords: this.corruptRecords,
      evicted: this.evictedCount,
      replayed: this.replayedCount,
      pending: this.seq - this.acked,
      compactions: this.compactions,
    };
  }

  // --- writes ---------------------------------------------------------------------

  /** Records an entry: in memory at once, on disk soon (acknowledged after the next batch fsync). */
  record(entry: DeadLetterEntry): void {
    if (this.closed) return;
    const line = encode({ t: 'e', e: entry });
    const seq = ++this.seq;
    this.live.set(entry.id, { entry, seq, size: line.length });
    this.liveBytes += line.length;
    this.enqueue(line, seq);
    this.enforceBounds();
  }

  markReplayed(id: string, status: number): boolean {
    const l = this.live.get(id);
    if (l === undefined || this.closed) return false;
    l.entry.replayed = { at: new Date().toISOString(), status };
    this.replayedCount++;
    this.enqueue(encode({ t: 'r', id, at: l.entry.replayed.at, status }), ++this.seq);
    return true;
  }

  recordAttempt(id: string, status: number, error: string | null): boolean {
    const l = this.live.get(id);
    if (l === undefined || this.closed) return false;
    const a = { at: new Date().toISOString(), status, error };
    // Only the last attempts are kept, so a looping replay cannot grow an entry without bound.
    l.entry.attempts.push(a);
    if (l.entry.attempts.length > 20) l.entry.attempts.shift();
    this.enqueue(encode({ t: 'a', id, ...a }), ++this.seq);
    return true;
  }

  delete(id: string, why = 'deleted'): boolean {
    const l = this.live.get(id);
    if (l === undefined || this.closed) return false;
    this.live.delete(id);
    this.liveBytes -= l.size;
    this.enqueue(encode({ t: 'd', id, why }), ++this.seq);
    this.maybeCompact();
    return true;
  }

  /** Deletes every entry: one compaction to an empty file rather than a record each. */
  clear(): number {
    const n = this.live.size;
    if (n === 0 || this.closed) return 0;
    this.live.clear();
    this.liveBytes = 0;
    this.queue.push('compact');
    this.pump();
    return n;
  }

  /**
   * Resolves when everything recorded so far is written and fsync'd, and no task (a write
   * or a compaction, such as the one clear() queues) is queued or running.
   */
  async flush(): Promise<void> {
    if (this.closed) return;
    for (;;) {
      // A queued or running task first: a compaction changes neither seq nor acked, so
      // `acked < seq` alone would let close() shut the fd under it (and the rename that
      // makes a clear() durable would be lost on restart).
      if (this.writing || this.queue.length > 0) {
        await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
        continue;
      }
      // Idle: fsync what was written. A record whose write failed is never written, so it
      // cannot be acknowledged; waiting for it would never end.
      if (this.acked < this.written) {
        if (this.syncTimer !== null) {
          clearTimeout(this.syncTimer);
          this.syncTimer = null;
        }
        await this.sync();
        continue;
      }
      return;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush().catch((err: unknown) => this.hooks.error(err, 'flushing the journal'));
    this.closed = true;
    if (this.syncTimer !== null) clearTimeout(this.syncTimer);
    await this.syncing;
    await new Promise<void>((resolve) => close(this.fd, () => resolve()));
  }

  // --- internals ------------------------------------------------------------------

  private apply(rec: Record<string, unknown>, size: number): void {
    const seq = ++this.seq;
    switch (rec.t) {
      case 'e': {
        const entry = rec.e as DeadLetterEntry;
        const prev = this.live.get(entry.id);
        if (prev !== undefined) this.liveBytes -= prev.size;
        this.live.set(entry.id, { entry, seq, size });
        this.liveBytes += size;
        if (entry.replayed) this.replayedCount++;
        return;
      }
      case 'r': {
        const l = this.live.get(rec.id as string);
        if (l) {
          l.entry.replayed = { at: rec.at as string, status: rec.status as number };
          this.replayedCount++;
        }
        return;
      }
      case 'a': {
        const l = this.live.get(rec.id as string);
        if (l) l.entry.attempts.push({ at: rec.at as string, status: rec.status as number, error: (rec.error as string | null) ?? null });
        return;
      }
      case 'd': {
        const l = this.live.get(rec.id as string);
        if (l) {
          this.live.delete(rec.id as string);
          this.liveBytes -= l.size;
        }
        return;
      }
    }
  }

  private enforceBounds(): void {
    const { maxEntries, maxBytes } = this.settings;
    // The newest entry always stays, even alone over maxBytes.
    while (this.live.size > 1 && (this.live.size > maxEntries || this.liveBytes > maxBytes)) {
      const oldest = this.live.values().next().value as Live;
      const why = this.live.size > maxEntries ? 'maxEntries' : 'maxBytes';
      this.live.delete(oldest.entry.id);
      this.liveBytes -= oldest.size;
      this.evictedCount++;
      if (!this.closed) this.enqueue(encode({ t: 'd', id: oldest.entry.id, why: 'evicted' }), ++this.seq);
      this.hooks.evicted(oldest.entry, why);
    }
    this.maybeCompact();
  }

  private maybeCompact(): void {
    if (this.fileBytes + this.queuedBytes - this.liveBytes > Math.max(this.liveBytes, COMPACT_SLACK) && !this.queue.includes('compact')) {
      this.queue.push('compact');
      this.pump();
    }
  }

  private enqueue(line: Buffer, seq: number): void {
    this.queue.push({ line, seq });
    this.queuedBytes += line.length;
    this.pump();
  }

  private pump(): void {
    if (this.writing || this.closed) return;
    const task = this.queue.shift();
    if (task === undefined) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
      return;
    }
    this.writing = true;
    if (task === 'compact') {
      this.compact().then(
        () => this.afterTask(),
        (err: unknown) => {
          this.hooks.error(err, 'compacting the journal');
          this.afterTask();
        },
      );
      return;
    }
    writeAll(this.fd, task.line, (err) => {
      this.queuedBytes -= task.line.length;
      if (err) {
        this.failed.add(task.seq);
        this.hooks.error(err, 'appending to the journal');
      } else {
        this.fileBytes += task.line.length;
        this.written = task.seq;
        this.hooks.bytes(this.fileBytes);
        this.armSync();
      }
      this.afterTask();
    });
  }

  private afterTask(): void {
    this.writing = false;
    this.pump();
    if (!this.writing) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  private armSync(): void {
    if (this.syncTimer !== null || this.syncing !== null) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      this.sync().catch((err: unknown) => this.hooks.error(err, 'fsync of the journal'));
    }, this.settings.syncInterval);
  }

  private isAcked(seq: number): boolean {
    return seq <= this.acked && !this.failed.has(seq);
  }

  /** fdatasync; acknowledges every record written before it started. */
  private sync(): Promise<void> {
    if (this.syncing !== null) return this.syncing;
    const upTo = this.written;
    this.syncing = new Promise<void>((resolve, reject) => {
      fdatasync(this.fd, (err) => {
        this.syncing = null;
        if (err) return reject(err);
        if (upTo > this.acked) this.acked = upTo;
        // Records written while this sync ran wait for the next batch.
        if (this.written > this.acked && !this.closed) this.armSync();
        const waiters = this.idleWaiters;
        this.idleWaiters = [];
        for (const w of waiters) w();
        resolve();
      });
    });
    return this.syncing;
  }

  /**
   * Rewrites the live entries (their replay state folded in) to a new file and renames it
   * over the journal. The records still queued are dropped: the snapshot, taken in one go
   * from memory, already holds what they say.
   */
  private async compact(): Promise<void> {
    const seq = this.seq;
    const lines: Buffer[] = [];
    for (const l of this.live.values()) {
      const line = encode({ t: 'e', e: l.entry });
      l.size = line.length;
      lines.push(line);
    }
    for (let i = this.queue.length - 1; i >= 0; i--) if (this.queue[i] !== 'compact') this.queue.splice(i, 1);
    this.queuedBytes = 0;
    const data = Buffer.concat(lines);
    this.liveBytes = data.length;
    if (this.syncTimer !== null) {
      clearTimeout(this.syncTimer);
      this.syncTimer = null;
    }
    await this.syncing;
    const tmp = `${this.file}.compact`;
    const out = await fsp.open(tmp, 'w', 0o600);
    try {
      await out.write(data);
      await out.sync();
    } finally {
      await out.close();
    }
    await new Promise<void>((resolve) => close(this.fd, () => resolve()));
    try {
      await fsp.rename(tmp, this.file);
    } catch (err) {
      // The old journal is still in place: write on to it, never to a closed descriptor.
      this.fd = openSync(this.file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND, 0o600);
      throw err;
    }
    try {
      const d = await fsp.open(this.settings.dir, 'r');
      try {
        await d.sync();
      } finally {
        await d.close();
      }
    } catch {
      /* some filesystems refuse fsync on a directory; the rename is still atomic */
    }
    this.fd = openSync(this.file, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_APPEND, 0o600);
    this.fileBytes = data.length;
    this.written = this.acked = seq;
    // The compacted file holds every live entry, those whose append had failed included.
    this.failed.clear();
    this.compactions++;
    this.hooks.bytes(this.fileBytes);
  }
}

/** Writes all of `buf` at the file's end, through short writes; one callback. */
function writeAll(fd: number, buf: Buffer, cb: (err: Error | null) => void, offset = 0): void {
  write(fd, buf, offset, buf.length - offset, null, (err, n) => {
    if (err) return cb(err);
    if (offset + n < buf.length) return writeAll(fd, buf, cb, offset + n);
    cb(null);
  });
}
