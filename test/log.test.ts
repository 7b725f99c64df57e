import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { accessLine, accessLogWriter, createLogger, type AccessRecord } from '../src/log.js';

/** A destination that keeps each write. */
function capture(): { lines: string[]; write(line: string): void } {
  const lines: string[] = [];
  return { lines, write: (line: string) => void lines.push(line) };
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
