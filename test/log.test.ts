import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { requireMain, startCli, type Cli } from './helpers/cli.js';
import { req } from './helpers/http.js';
import { ok, startUpstream } from './helpers/upstream.js';
import { waitFor } from './helpers/wait.js';
import { accessLine, accessLogWriter, bufferedDestination, createLogger, droppedLogLines, LineBatch, type AccessRecord } from '../src/log.js';

/** A destination that keeps each write. */
function capture(): { lines: string[]; write(line: string): void } {
  const lines: string[] = [];
  return { lines, write: (line: string) => void lines.push(line) };
}

/** A FIFO in a new temporary directory, its read end open (non-blocking); nobody reads it yet. */
function fifo(): { path: string; dir: string; reader: number } {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-log-'));
  const path = join(dir, 'stdout');
  expect(spawnSync('mkfifo', [path]).status).toBe(0);
  return { path, dir, reader: openSync(path, constants.O_RDONLY | constants.O_NONBLOCK) };
}

/** process.stderr.write replaced by one that keeps what it is given, until restore(). */
function captureStderr(): { notices: string[]; restore: () => void } {
  const notices: string[] = [];
  const stderrWrite = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((chunk: string) => {
    notices.push(String(chunk));
    return true;
  }) as typeof process.stderr.write;
  return { notices, restore: () => void (process.stderr.write = stderrWrite) };
}

const RECORDS: AccessRecord[] = [
  { route: 'bench', method: 'GET', path: '/x', protocol: 'http/1.1', status: 200, attempts: 1, durationMs: 0.172, bytesOut: 128, requestId: 'a4cca556-b044-424d-86ff-0cebe80537e2' },
  { route: null, method: 'CONNECT', path: '/', protocol: 'http/1.1', status: 405, attempts: 0, error: 'OUTRIGGER_METHOD_NOT_ALLOWED', requestId: 'r' },
  // What a client controls: quotes, backslashes, control characters, non-ASCII, a lone surrogate.
  { route: 'we"ird\\route', method: 'POST', path: '/p"q\\r\u0001\u00e9\u2028\ud800', protocol: 'h2c', status: 503, attempts: 3, durationMs: 12.5, bytesOut: 0, fallback: 'breaker-open', error: undefined, requestId: 'id "with" \\ \n newline' },
  { route: 'grpc', method: 'POST', path: '/pkg.Svc/Call', protocol: 'h2c', status: 200, grpcStatus: 0, attempts: 2, durationMs: 3, bytesOut: 17, requestId: 'g' },
  { route: 'ws', method: 'GET', path: '/socket', protocol: 'http/1.1', upgrade: 'websocket', status: 101, grpcStatus: undefined, attempts: 1, durationMs: 1.001, bytesOut: 0, error: 'response_truncated', requestId: 'w' },
];

describe('access-log lines', () => {
  it('are byte for byte what pino writes for the same record with createLogger options', () => {
    for (const r of RECORDS) {
      const dest = capture();
      createLogger('info', dest).info({ access: true, ...r });
      expect(dest.lines).toHaveLength(1);
      const fromPino = dest.lines[0] as string;
      const time = (JSON.parse(fromPino) as { time: number }).time;
      expect(accessLine(r, time)).toBe(fromPino);
    }
  });

  it('go to the destination of a createLogger logger, one write per line, parseable', () => {
    const dest = capture();
    const write = accessLogWriter(createLogger('info', dest));
    for (const r of RECORDS) write(r);
    expect(dest.lines).toHaveLength(RECORDS.length);
    const parsed = dest.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(parsed[2]).toMatchObject({ level: 'info', access: true, route: 'we"ird\\route', path: '/p"q\\r\u0001\u00e9\u2028\ud800', requestId: 'id "with" \\ \n newline' });
    expect(parsed[1]).toMatchObject({ route: null, status: 405 });
    expect('grpcStatus' in (parsed[4] as object)).toBe(false);
  });

  it('go through info() of a logger createLogger did not make, with its own options', () => {
    const dest = capture();
    const foreign = pino({ level: 'info', base: { app: 'host' } }, dest);
    accessLogWriter(foreign)(RECORDS[0] as AccessRecord);
    expect(dest.lines).toHaveLength(1);
    const line = JSON.parse(dest.lines[0] as string) as Record<string, unknown>;
    expect(line).toMatchObject({ level: 30, app: 'host', access: true, route: 'bench', status: 200 });
  });
});

describe('LineBatch (the stdout destination)', () => {
  /** Stands in for sonic-boom: keeps each chunk, and counts flushes. */
  function sink(): { chunks: string[]; flushes: number; write(s: string): boolean; flush(cb?: (err?: Error) => void): void } {
    const s = {
      chunks: [] as string[],
      flushes: 0,
      write: (c: string) => (s.chunks.push(c), true),
      flush: (cb?: (err?: Error) => void) => {
        s.flushes++;
        cb?.();
      },
    };
    return s;
  }
  const line = (i: number) => `${accessLine({ ...(RECORDS[0] as AccessRecord), requestId: `id-${i}` }, 1765000000000 + i)}`;

  it('hands lines on joined, in order, once ~8 KiB is collected, and the rest on flush', () => {
    const out = sink();
    const batch = new LineBatch(out);
    const lines: string[] = [];
    let i = 0;
    // Up to just under 8192 characters, nothing is written.
    while (lines.join('').length + line(i).length < 8192) {
      lines.push(line(i));
      batch.write(line(i++));
    }
    expect(out.chunks).toHaveLength(0);
    lines.push(line(i));
    batch.write(line(i++));
    expect(out.chunks).toEqual([lines.join('')]);
    batch.write(line(i));
    let called = false;
    batch.flush(() => (called = true));
    expect(out.chunks).toEqual([lines.join(''), line(i)]);
    expect(called).toBe(true);
    expect(out.flushes).toBe(1);
    // Every line arrives once, whole and in order.
    const ids = out.chunks.join('').trimEnd().split('\n').map((l) => (JSON.parse(l) as { requestId: string }).requestId);
    expect(ids).toEqual(Array.from({ length: i + 1 }, (_, k) => `id-${k}`));
  });

  it('writes nothing on a push with nothing collected', () => {
    const out = sink();
    const batch = new LineBatch(out);
    batch.push();
    batch.flush();
    expect(out.chunks).toHaveLength(0);
  });
});

describe('stdout of the real CLI with the access log on', () => {
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
  });

  /** The CLI with the access log on, routing everything to an upstream that answers 200. */
  async function accessLoggingCli(): Promise<Cli> {
    requireMain();
    const up = await startUpstream(ok('x'));
    cleanups.push(() => up.close());
    return startCli({ log: { level: 'info', accessLog: true }, drain: { delay: '100ms', timeout: '5s' }, upstreams: { up: { endpoints: [up.url] } }, routes: [{ name: 'r', match: { pathPrefix: '/' }, upstream: 'up' }] }, cleanups);
  }

  it('carries every line once, in order: batches while busy, the rest within the flush interval, and what is left at exit', async () => {
    const cli = await accessLoggingCli();
    // 150 lines of ~230 bytes: several 8 KiB batches and a remainder.
    const ids = Array.from({ length: 150 }, (_, i) => `line-${i}`);
    for (const id of ids) expect((await req(cli.url, { path: '/a', headers: { 'x-request-id': id } })).status).toBe(200);
    const access = () => cli.logs.filter((l) => l.access === true).map((l) => l.requestId);
    // The remainder is written by the 250 ms flush, without more traffic.
    await waitFor(() => access().length === ids.length || null, { timeout: 5000, interval: 20, what: 'all 150 access lines' });
    expect(access()).toEqual(ids);
    // A line still collected at SIGTERM is written before the process exits.
    expect((await req(cli.url, { path: '/a', headers: { 'x-request-id': 'last' } })).status).toBe(200);
    cli.child.kill('SIGTERM');
    await cli.exited;
    await waitFor(() => (access().includes('last') ? true : null), { timeout: 5000, interval: 20, what: 'the last line after exit' });
    expect(access()).toEqual([...ids, 'last']);
    // The start-up line came first: pino's own lines share the batch with the access lines.
    expect(cli.logs.findIndex((l) => l.msg === 'outrigger listening')).toBeLessThan(cli.logs.findIndex((l) => l.access === true));
  }, 30_000);

  it('goes on answering, says on stderr that writes fail (EPIPE), and exits 0 on SIGTERM saying what could not be written', async () => {
    const cli = await accessLoggingCli();
    // The log collector dies: the read end of the proxy's stdout closes.
    cli.child.stdout?.destroy();
    // 150 access lines of ~230 bytes: several 8 KiB chunks, each write meeting EPIPE.
    for (let i = 0; i < 150; i++) expect((await req(cli.url, { path: '/a' })).status).toBe(200);
    await waitFor(() => (cli.output().includes('writing log lines to stdout failed (EPIPE)') ? true : null), { timeout: 5000, interval: 20, what: 'the EPIPE notice on stderr' });
    expect((await req(`${cli.adminUrl}/healthz`)).status).toBe(200);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toContain('the log lines still buffered could not be written at exit (EPIPE)');
    expect(cli.output().match(/writing log lines to stdout failed/g)).toHaveLength(1);
  }, 30_000);
});

describe('bufferedDestination when stdout does not keep up', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => {
    cleanup?.();
    cleanup = undefined;
  });

  it('holds at most maxBufferedBytes, drops and counts whole lines past it, and every line is either written or counted', async () => {
    // A FIFO nobody reads yet: the first write fills the pipe and blocks, as a stalled log
    // collector's pipe would.
    const { reader, path, dir } = fifo();
    const writer = openSync(path, 'w');
    const stderr = captureStderr();
    const notices = stderr.notices;
    const { batch, dest } = bufferedDestination(writer, 256 * 1024);
    cleanup = () => {
      stderr.restore();
      dest.on('error', () => {}); // a write still blocked fails with EPIPE once the reader closes
      dest.destroy();
      closeSync(reader);
      rmSync(dir, { recursive: true, force: true });
    };
    const before = droppedLogLines();
    const line = `${'x'.repeat(199)}\n`;
    const written = 20_000; // 4 MB, far past the 256 KiB bound
    for (let i = 0; i < written; i++) batch.write(line);
    batch.push();
    stderr.restore();
    const dropped = droppedLogLines() - before;
    expect(dropped).toBeGreaterThan(written - (256 * 1024) / line.length - 1);
    expect(dropped).toBeLessThan(written);
    expect(notices.filter((n) => n.includes('log lines are being dropped'))).toHaveLength(1);

    // The collector catches up: what was kept arrives, whole lines only.
    let text = '';
    const buf = Buffer.alloc(65_536);
    await waitFor(
      () => {
        for (;;) {
          let n = 0;
          try {
            n = readSync(reader, buf, 0, buf.length, null);
          } catch {
            break; // EAGAIN: the pipe is empty for now
          }
          if (n === 0) break;
          text += buf.toString('latin1', 0, n);
        }
        return text.length === (written - dropped) * line.length;
      },
      { timeout: 10_000, interval: 10, what: 'the kept lines through the pipe' },
    );
    expect(text.split('\n').every((l) => l === '' || l === line.slice(0, -1))).toBe(true);
  });
});

describe('bufferedDestination when writes fail', () => {
  // Run last first: a destination is destroyed before stderr comes back, and that before
  // the descriptors close.
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    while (cleanups.length > 0) await (cleanups.pop() as () => Promise<void> | void)();
  });

  /** stderr captured until the test's cleanups reach it. */
  function captureNotices(): string[] {
    const { notices, restore } = captureStderr();
    cleanups.push(restore);
    return notices;
  }

  it('on a full disk (ENOSPC from /dev/full) keeps going: says so once, drops and counts past the bound, and gives up at exit instead of looping', async () => {
    const fd = openSync('/dev/full', 'w');
    cleanups.push(() => closeSync(fd));
    const notices = captureNotices();
    const { batch, exitFlush } = bufferedDestination(fd, 64 * 1024, 300);
    const before = droppedLogLines();
    const line = `${'x'.repeat(199)}\n`;
    // Rounds apart in time, so the failed writes come back between them.
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 200; i++) batch.write(line);
      batch.push();
      await new Promise((r) => setTimeout(r, 20));
    }
    const failed = notices.filter((n) => n.includes('writing log lines to stdout failed (ENOSPC)'));
    expect(failed).toHaveLength(1);
    expect(failed[0]).toContain('outrigger_log_lines_dropped_total');
    // 1,000 lines of 200 bytes against a 64 KiB bound: what does not fit is counted.
    const dropped = droppedLogLines() - before;
    expect(dropped).toBeGreaterThan(1000 - (64 * 1024) / line.length - 1);
    expect(dropped).toBeLessThan(1000);
    const started = Date.now();
    exitFlush();
    expect(Date.now() - started).toBeLessThan(2000);
    expect(notices.some((n) => n.includes('the log lines still buffered could not be written at exit (ENOSPC)'))).toBe(true);
  });

  it('at exit on a non-blocking pipe that takes nothing (EAGAIN) waits at most its bound, then says what is lost', () => {
    const { reader, path, dir } = fifo();
    const writer = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
    cleanups.push(() => {
      closeSync(reader);
      rmSync(dir, { recursive: true, force: true });
    });
    const notices = captureNotices();
    const { batch, dest, exitFlush } = bufferedDestination(writer, 1024 * 1024, 300);
    // destroy() closes the writer (asynchronously: closing it here too could close a
    // descriptor the next test has been given), and is waited for before stderr comes back,
    // because the async write still waiting would fail with EAGAIN and say so.
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          dest.once('close', () => resolve());
          dest.destroy();
        }),
    );
    // More than a pipe holds (64 KiB on Linux), all still buffered when exit comes.
    const line = `${'x'.repeat(199)}\n`;
    for (let i = 0; i < 2000; i++) batch.write(line);
    const started = Date.now();
    exitFlush();
    const took = Date.now() - started;
    expect(took).toBeGreaterThanOrEqual(250);
    expect(took).toBeLessThan(5000);
    expect(notices.some((n) => n.includes('could not be written at exit (EAGAIN)'))).toBe(true);
  });
});
