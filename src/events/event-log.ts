// Operator events: a bounded in-memory ring of typed events with a severity, behind
// GET /events and the status page. Repeats of one kind for one route/breaker within the
// coalescing time merge into the open event (count, lastSeen), so a failing upstream
// makes one line, not one per request. Every new event is also a log line at the
// matching level; every occurrence, merged or not, counts in outrigger_events_total.

export const SEVERITIES = ['info', 'warning', 'error', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Each kind with the severities it can be raised at (the outrigger_events_total series). */
export const EVENT_KINDS = {
  breaker_opened: ['error'],
  breaker_half_opened: ['info'],
  breaker_closed: ['info'],
  breaker_isolated: ['warning'],
  breaker_reset: ['info'],
  breaker_flapping_started: ['warning'],
  breaker_flapping_stopped: ['info'],
  retry_budget_exhausted: ['warning'],
  upstream_unavailable: ['error'],
  deadline_exceeded: ['warning'],
  response_truncated: ['error'],
  config_reload_succeeded: ['info'],
  config_reload_failed: ['error'],
  internal_error: ['critical'],
  drain_started: ['info'],
  route_health: ['info', 'warning', 'critical'],
  request_dead_lettered: ['error'],
  dead_letters_evicted: ['critical'],
} as const satisfies Record<string, readonly Severity[]>;
export type EventKind = keyof typeof EVENT_KINDS;

export interface OperatorEvent {
  /** Increases by one per new event; a stable cursor. */
  id: number;
  /** When it was first seen (ISO 8601); same as firstSeen. */
  time: string;
  severity: Severity;
  kind: EventKind;
  route?: string;
  breaker?: string;
  message: string;
  count: number;
  firstSeen: string;
  lastSeen: string;
}

interface Entry {
  ev: OperatorEvent;
  key: string;
  lastMs: number;
}

/** Writes the log line of a new event. */
export type EventLogWriter = (level: 'info' | 'warn' | 'error' | 'fatal', fields: Record<string, unknown>, msg: string) => void;
/** Counts one occurrence. */
export type EventCounter = (kind: EventKind, severity: Severity) => void;

const LOG_LEVEL: Record<Severity, 'info' | 'warn' | 'error' | 'fatal'> = { info: 'info', warning: 'warn', error: 'error', critical: 'fatal' };

export class EventLog {
  private ring: Array<Entry | undefined>;
  private head = 0;
  private size = 0;
  private seq = 0;
  private readonly open = new Map<string, Entry>();
  private capacity: number;
  private coalesceMs: number;
  private writer: EventLogWriter | null = null;
  private counter: EventCounter | null = null;

  constructor(
    opts: { capacity: number; coalesce: number } = { capacity: 1000, coalesce: 10_000 },
    private readonly now: () => number = Date.now,
  ) {
    this.capacity = opts.capacity;
    this.coalesceMs = opts.coalesce;
    this.ring = new Array<Entry | undefined>(opts.capacity);
  }

  /** Where new events are logged (the proxy's pino logger). */
  logTo(writer: EventLogWriter): void {
    this.writer = writer;
  }

  countWith(counter: EventCounter): void {
    this.counter = counter;
  }

  /** Applies new settings (at start and on reload); a smaller capacity drops the oldest. */
  configure(opts: { capacity: number; coalesce: number }): void {
    this.coalesceMs = opts.coalesce;
    if (opts.capacity === this.capacity) return;
    const kept = this.list().slice(-opts.capacity);
    this.capacity = opts.capacity;
    this.ring = new Array<Entry | undefined>(opts.capacity);
    this.head = 0;
    this.size = 0;
    this.open.clear();
    for (const ev of kept) this.push({ ev, key: keyOf(ev.kind, ev.route, ev.breaker), lastMs: Date.parse(ev.lastSeen) });
  }

  /**
   * Raises an event, or merges it into the open one of the same kind, route, breaker and
   * severity seen within the coalescing time. Returns the event.
   */
  emit(
    kind: EventKind,
    severity: Severity,
    where: { route?: string | undefined; breaker?: string | undefined },
    message: string,
    /** false when the caller writes its own log line for this occurrence. */
    log = true,
  ): OperatorEvent {
    const nowMs = this.now();
    const key = keyOf(kind, where.route, where.breaker);
    this.counter?.(kind, severity);
    const open = this.open.get(key);
    if (open && open.ev.severity === severity && nowMs - open.lastMs <= this.coalesceMs) {
      open.ev.count++;
      open.lastMs = nowMs;
      open.ev.lastSeen = new Date(nowMs).toISOString();
      open.ev.message = message;
      return open.ev;
    }
    const at = new Date(nowMs).toISOString();
    const ev: OperatorEvent = {
      id: ++this.seq,
      time: at,
      severity,
      kind,
      ...(where.route !== undefined ? { route: where.route } : {}),
      ...(where.breaker !== undefined ? { breaker: where.breaker } : {}),
      message,
      count: 1,
      firstSeen: at,
      lastSeen: at,
    };
    this.push({ ev, key, lastMs: nowMs });
    if (log) this.writer?.(LOG_LEVEL[severity], { event: kind, severity, route: where.route, breaker: where.breaker }, message);
    return ev;
  }

  private push(e: Entry): void {
    const idx = (this.head + this.size) % this.capacity;
    if (this.size === this.capacity) {
      const old = this.ring[this.head];
      if (old && this.open.get(old.key) === old) this.open.delete(old.key);
      this.head = (this.head + 1) % this.capacity;
    } else this.size++;
    this.ring[idx] = e;
    this.open.set(e.key, e);
  }

  /** Oldest first. */
  list(): OperatorEvent[] {
    const out: OperatorEvent[] = [];
    for (let i = 0; i < this.size; i++) out.push((this.ring[(this.head + i) % this.capacity] as Entry).ev);
    return out;
  }

  /** Newest first: events last seen after `sinceMs` at `minSeverity` or above. */
  query(sinceMs: number | null, minSeverity: Severity): OperatorEvent[] {
    const min = SEVERITIES.indexOf(minSeverity);
    const out: OperatorEvent[] = [];
    for (let i = this.size - 1; i >= 0; i--) {
      const e = this.ring[(this.head + i) % this.capacity] as Entry;
      if (sinceMs !== null && e.lastMs <= sinceMs) continue;
      if (SEVERITIES.indexOf(e.ev.severity) < min) continue;
      out.push(e.ev);
    }
    return out;
  }
}

function keyOf(kind: string, route: string | undefined, breaker: string | undefined): string {
  return `${kind}\u0000${route ?? ''}\u0000${breaker ?? ''}`;
}
