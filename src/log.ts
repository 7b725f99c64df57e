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

export function createLogger(level: LogLevel, dest: pino.DestinationStream = pino.destination({ dest: 1, sync: false })): Logger {
  return pino(
    {
      level,
      base: { service: 'outrigger' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
}
