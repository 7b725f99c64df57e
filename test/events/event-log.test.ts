import { describe, expect, it } from 'vitest';
import { EventLog } from '../../src/events/event-log.js';

function clocked(capacity = 1000, coalesce = 10_000) {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const log = new EventLog({ capacity, coalesce }, () => now);
  const lines: Array<[string, Record<string, unknown>, string]> = [];
  const counts: string[] = [];
  log.logTo((level, fields, msg) => lines.push([level, fields, msg]));
  log.countWith((k, s) => counts.push(`${k}/${s}`));
  return { log, lines, counts, tick: (ms: number) => (now += ms) };
}

describe('EventLog', () => {
  it('merges repeats of one kind and route within the coalescing time', () => {
    const { log, lines, counts, tick } = clocked();
    log.emit('upstream_unavailable', 'error', { route: 'a' }, 'down');
    tick(4000);
    log.emit('upstream_unavailable', 'error', { route: 'a' }, 'down');
    log.emit('upstream_unavailable', 'error', { route: 'b' }, 'down');
    tick(9000);
    const ev = log.emit('upstream_unavailable', 'error', { route: 'a' }, 'still down');
    expect(ev.count).toBe(3);
    expect(ev.firstSeen).toBe('2026-01-01T00:00:00.000Z');
    expect(ev.lastSeen).toBe('2026-01-01T00:00:13.000Z');
    expect(ev.message).toBe('still down');
    // Past the coalescing time since the last repeat: a new event.
    tick(10_001);
    expect(log.emit('upstream_unavailable', 'error', { route: 'a' }, 'down').count).toBe(1);
    expect(log.list()).toHaveLength(3);
    // One log line per new event, one count per occurrence.
    expect(lines.map((l) => l[0])).toEqual(['error', 'error', 'error']);
    expect(lines[0]?.[1]).toMatchObject({ event: 'upstream_unavailable', severity: 'error', route: 'a' });
    expect(counts).toHaveLength(5);
  });

  it('keeps at most capacity events, dropping the oldest', () => {
    const { log, tick } = clocked(3, 0);
    for (let i = 0; i < 5; i++) {
      log.emit('breaker_opened', 'error', { breaker: `b${i}` }, `opened ${i}`);
      tick(1);
    }
    expect(log.list().map((e) => e.breaker)).toEqual(['b2', 'b3', 'b4']);
    expect(log.list().map((e) => e.id)).toEqual([3, 4, 5]);
  });

  it('filters by minimum severity and by last seen, newest first', () => {
    const { log, tick } = clocked();
    log.emit('breaker_closed', 'info', { breaker: 'x' }, 'closed');
    tick(1000);
    log.emit('retry_budget_exhausted', 'warning', { route: 'r' }, 'spent');
    tick(1000);
    log.emit('internal_error', 'critical', {}, 'bug');
    expect(log.query(null, 'info').map((e) => e.kind)).toEqual(['internal_error', 'retry_budget_exhausted', 'breaker_closed']);
    expect(log.query(null, 'warning').map((e) => e.kind)).toEqual(['internal_error', 'retry_budget_exhausted']);
    expect(log.query(Date.parse('2026-01-01T00:00:01Z'), 'info').map((e) => e.kind)).toEqual(['internal_error']);
  });

  it('maps severities to pino levels; critical is fatal', () => {
    const { log, lines } = clocked();
    log.emit('internal_error', 'critical', {}, 'bug');
    log.emit('deadline_exceeded', 'warning', { route: 'r' }, 'late');
    log.emit('config_reload_failed', 'error', {}, 'bad', false);
    expect(lines.map((l) => l[0])).toEqual(['fatal', 'warn']);
  });

  it('shrinking the capacity keeps the newest', () => {
    const { log } = clocked(10, 0);
    for (let i = 0; i < 6; i++) log.emit('breaker_opened', 'error', { breaker: `b${i}` }, 'o');
    log.configure({ capacity: 2, coalesce: 0 });
    expect(log.list().map((e) => e.breaker)).toEqual(['b4', 'b5']);
  });
});

describe('RouteMetrics event hooks', () => {
  it('raise response_truncated and internal_error for the route, counted', async () => {
    const { Metrics } = await import('../../src/admin/metrics.js');
    const m = new Metrics(false);
    const rm = m.forRoute('r', 'u');
    expect(await m.registry.metrics()).toContain('outrigger_internal_errors_total{route="r"} 0');
    rm.responseTruncated();
    rm.responseTruncated();
    rm.internalError('boom');
    expect(m.events.list().map((e) => [e.kind, e.severity, e.route, e.count])).toEqual([
      ['response_truncated', 'error', 'r', 2],
      ['internal_error', 'critical', 'r', 1],
    ]);
    const text = await m.registry.metrics();
    expect(text).toContain('outrigger_events_total{kind="response_truncated",severity="error"} 2');
    expect(text).toContain('outrigger_internal_errors_total{route="r"} 1');
  });
});
