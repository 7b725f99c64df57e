// JSON logs on stdout (pino). Callers check `isLevelEnabled` or a precomputed flag before
// building a log object on the request path, so a disabled level costs one branch.
import pino, { type Logger } from 'pino';
// sonic-boom is CommonJS: its class is a property of the default export, which is how its
// types see it from ESM as well.
import sonicBoom from 'sonic-boom';
import type { LOG_LEVELS } from './config/schema.js';

export type LogLevel = (typeof LOG_LEVELS)[number];
export type { Logger };
type SonicBoom = InstanceType<typeof sonicBoom.SonicBoom>;

/** OUTRIGGER_LOG_LEVEL wins over the config file, so an operator can turn on debug without a config change. */
export function effectiveLevel(configured: LogLevel, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const v = env.OUTRIGGER_LOG_LEVEL?.toLowerCase();
  const allowed: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  return v !== undefined && allowed.includes(v) ? (v as LogLevel) : configured;
}

/** How long a log line may wait in the buffer before it is written. */
const FLUSH_INTERVAL_MS = 250;

/** Lines are handed to sonic-boom in chunks of about this many characters. */
const BATCH_CHARS = 8192;

/**
 * Collects lines and hands them to sonic-boom joined, one chunk per ~8 KiB. sonic-boom
 * appends each write to its last buffered string and measures that string's byte length
 * every time, which flattens it: a copy of everything buffered per line, ~3.6 µs per
 * access-log line against ~0.6 µs batched here (232-byte lines to /dev/null, Node 24).
 * pino's own lines go through the same batch, so the order of all lines is kept.
 */
export class LineBatch implements pino.DestinationStream {
  private parts: string[] = [];
  private chars = 0;
  constructor(private readonly out: Pick<SonicBoom, 'write' | 'flush'>) {}

  write(line: string): void {
    this.parts.push(line);
    this.chars += line.length;
    if (this.chars >= BATCH_CHARS) this.push();
  }

  /** Hands what is collected to sonic-boom (which writes it asynchronously). */
  push(): void {
    if (this.parts.length === 0) return;
    const chunk = this.parts.length === 1 ? (this.parts[0] as string) : this.parts.join('');
    this.parts = [];
    this.chars = 0;
    this.out.write(chunk);
  }

  /** pino's logger.flush(cb): everything collected is written, then cb. */
  flush(cb: (err?: Error) => void = () => {}): void {
    this.push();
    this.out.flush(cb);
  }
}

/**
 * The most stdout may hold unwritten. Past it, while stdout does not keep up (a blocked
 * pipe, a stalled log collector), lines are dropped and counted instead of growing the
 * heap until the process dies: 64 MiB is ~290,000 access-log lines, about 20 s at 15k req/s.
 */
export const MAX_BUFFERED_LOG_BYTES = 64 * 1024 * 1024;

let droppedLines = 0;

/** Log lines dropped because stdout did not keep up (outrigger_log_lines_dropped_total). */
export function droppedLogLines(): number {
  return droppedLines;
}

/** How often, at most, stderr says that lines are being dropped, or that writes fail. */
const NOTICE_MS = 60_000;

/**
 * How long the exit flush waits on a non-blocking pipe that takes nothing (EAGAIN) before
 * giving up. A blocking pipe cannot be bounded: the write waits until the reader drains it.
 */
const EXIT_FLUSH_MS = 5_000;

/** A stderr notice said at most once per NOTICE_MS; the text is built only when it is said. */
function rateLimitedNotice(): (text: () => string) => void {
  let said = -Infinity;
  return (text) => {
    const now = Date.now();
    if (now - said < NOTICE_MS) return;
    said = now;
    process.stderr.write(text());
  };
}

function sizeText(bytes: number): string {
  return bytes % 1_048_576 === 0 ? `${bytes / 1_048_576} MiB` : `${bytes} bytes`;
}

function errorCode(err: unknown): string {
  return (err as NodeJS.ErrnoException | undefined)?.code ?? String(err);
}

/**
 * A destination on `fd` written asynchronously in chunks of at least 8 KiB (or every
 * 250 ms): one write per line would cost a thread-pool round trip per request with access
 * logs on. At most `maxBufferedBytes` wait; what comes past that is dropped, counted, and
 * said on stderr (at most once a minute). A failed write (EPIPE, ENOSPC, EIO) keeps its
 * bytes and is retried with the next chunk, so it ends up written or, past the bound,
 * dropped and counted; stderr says why (at most once a minute), and the process goes on.
 * (pino.destination would instead discard every later line uncounted after EPIPE, and
 * crash on any other write error.) Exported for tests, which pass a pipe or /dev/full.
 */
export function bufferedDestination(fd: number, maxBufferedBytes = MAX_BUFFERED_LOG_BYTES, exitFlushMs = EXIT_FLUSH_MS): { batch: LineBatch; dest: SonicBoom; exitFlush: () => void } {
  // EAGAIN (a pipe that is full) is retried every 100 ms while running; at exit only until
  // giveUpAt, so a stalled collector cannot hold the process forever.
  let giveUpAt = Infinity;
  const dest = new sonicBoom.SonicBoom({ fd, sync: false, minLength: BATCH_CHARS, maxLength: maxBufferedBytes, retryEAGAIN: () => Date.now() < giveUpAt });
  const sayDropped = rateLimitedNotice();
  dest.on('drop', (data: unknown) => {
    const text = String(data);
    let lines = 0;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) lines++;
    droppedLines += lines;
    sayDropped(() => `outrigger: stdout is not keeping up; log lines are being dropped (${droppedLines} so far, counted in outrigger_log_lines_dropped_total)\n`);
  });
  const sayFailed = rateLimitedNotice();
  dest.on('error', (err: unknown) => {
    sayFailed(
      () =>
        `outrigger: writing log lines to stdout failed (${errorCode(err)}); they are kept and retried with the next lines, and past ${sizeText(maxBufferedBytes)} buffered dropped and counted in outrigger_log_lines_dropped_total\n`,
    );
  });
  const batch = new LineBatch(dest);
  const exitFlush = () => {
    batch.push();
    giveUpAt = Date.now() + exitFlushMs;
    try {
      dest.flushSync();
    } catch (err) {
      process.stderr.write(`outrigger: the log lines still buffered could not be written at exit (${errorCode(err)})\n`);
    }
  };
  return { batch, dest, exitFlush };
}

/** stdout, through bufferedDestination; whatever is buffered is written synchronously at exit. */
function stdoutDestination(): pino.DestinationStream {
  const { batch, dest, exitFlush } = bufferedDestination(1);
  const flush = () => {
    batch.push();
    try {
      dest.flush();
    } catch {
      // Nothing buffered: nothing to do.
    }
  };
  setInterval(flush, FLUSH_INTERVAL_MS).unref();
  process.once('exit', exitFlush);
  return batch;
}

/** The destination of each logger createLogger made: accessLogWriter writes its lines there. */
const destinations = new WeakMap<Logger, pino.DestinationStream>();

export function createLogger(level: LogLevel, dest: pino.DestinationStream = stdoutDestination()): Logger {
  const logger = pino(
    {
      level,
      // No pid/hostname: the pod already labels every line. Epoch-ms time: formatting an ISO
      // date on every access-log line costs more than the collector parsing a number.
      base: undefined,
      timestamp: pino.stdTimeFunctions.epochTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  destinations.set(logger, dest);
  return logger;
}

/** One access-log line: what the proxy knows about an exchange when it is accounted. */
export interface AccessRecord {
  route: string | null;
  method: string;
  path: string;
  protocol: 'h2c' | 'http/1.1';
  upgrade?: string | undefined;
  status: number;
  grpcStatus?: number | undefined;
  attempts: number;
  durationMs?: number;
  bytesOut?: number;
  fallback?: string | undefined;
  error?: string | undefined;
  requestId: string;
}

export type AccessLogWriter = (r: AccessRecord) => void;

/**
 * Writes access-log lines. For a logger made by createLogger the line is built here, with
 * the fields in a fixed order, and handed to its destination: the same bytes pino would
 * write for `log.info({ access: true, ...r })` (test/log.test.ts compares them), at about a
 * third of the instructions, since pino walks the object's keys and picks a serializer for
 * each value. Any other logger (a library user's own) gets `info()`, with its own options.
 * Callers decide whether to log (Runtime.sampleAccess) before building the record.
 */
export function accessLogWriter(logger: Logger): AccessLogWriter {
  const dest = destinations.get(logger);
  if (dest === undefined) return (r) => logger.info({ access: true, ...r });
  return (r) => {
    dest.write(accessLine(r, Date.now()));
  };
}

/** The JSON line (with its newline) for r at epoch-ms time `time`, as createLogger's pino writes it. */
export function accessLine(r: AccessRecord, time: number): string {
  // Strings that come from the request (path, request id, method) or the config (route) go
  // through JSON.stringify; numbers print as JSON.stringify would (all are finite here).
  let line = `{"level":"info","time":${time},"access":true,"route":${r.route === null ? 'null' : JSON.stringify(r.route)},"method":${JSON.stringify(r.method)},"path":${JSON.stringify(r.path)},"protocol":"${r.protocol}"`;
  if (r.upgrade !== undefined) line += `,"upgrade":${JSON.stringify(r.upgrade)}`;
  line += `,"status":${r.status}`;
  if (r.grpcStatus !== undefined) line += `,"grpcStatus":${r.grpcStatus}`;
  line += `,"attempts":${r.attempts}`;
  if (r.durationMs !== undefined) line += `,"durationMs":${r.durationMs}`;
  if (r.bytesOut !== undefined) line += `,"bytesOut":${r.bytesOut}`;
  if (r.fallback !== undefined) line += `,"fallback":${JSON.stringify(r.fallback)}`;
  if (r.error !== undefined) line += `,"error":${JSON.stringify(r.error)}`;
  return `${line},"requestId":${JSON.stringify(r.requestId)}}\n`;
}
