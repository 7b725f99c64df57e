// JSON logs on stdout (pino). Callers check `isLevelEnabled` or a precomputed flag before
// building a log object on the request path, so a disabled level costs one branch.
import pino, { type Logger } from 'pino';
import type { LOG_LEVELS } from './config/schema.js';

export type LogLevel = (typeof LOG_LEVELS)[number];
export type { Logger };

/** OUTRIGGER_LOG_LEVEL wins over the config file, so an operator can turn on debug without a config change. */
export function effectiveLevel(configured: LogLevel, env: NodeJS.ProcessEnv = process.env): LogLevel {
  const v = env.OUTRIGGER_LOG_LEVEL?.toLowerCase();
  const allowed: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
  return v !== undefined && allowed.includes(v) ? (v as LogLevel) : configured;
}

/** How long a log line may wait in the buffer before it is written. */
const FLUSH_INTERVAL_MS = 250;

/**
 * stdout, written asynchronously in chunks of at least 8 KiB (or every 250 ms). One write
 * per line would cost a thread-pool round trip per request with access logs on; batching
 * makes that a small fraction. Whatever is buffered is written synchronously at exit.
 */
function stdoutDestination(): pino.DestinationStream {
  const dest = pino.destination({ dest: 1, sync: false, minLength: 8192 });
  const flush = () => {
    try {
      dest.flush();
    } catch {
      // Nothing buffered, or stdout closed: nothing to do.
    }
  };
  setInterval(flush, FLUSH_INTERVAL_MS).unref();
  process.once('exit', () => {
    try {
      dest.flushSync();
    } catch {
      // stdout is gone; there is nowhere left to write.
    }
  });
  return dest;
}

export function createLogger(level: LogLevel, dest: pino.DestinationStream = stdoutDestination()): Logger {
  return pino(
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
}
