// The dead-letter endpoints of the admin listener, all token-guarded (entries hold request
// data): list, read, replay (one or in bulk, rate-limited), delete. Replaying goes through
// a function app.ts hands over (AdminState.replayDeadLetter); admin never sees the proxy.
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { DeadLetterEntry, DeadLetterSummary, Journal } from '../deadletter/journal.js';
import type { Metrics } from './metrics.js';

export interface ReplayResult {
  status: number;
  /** The x-outrigger-error of a proxy-made answer, or a transport error; null otherwise. */
  error: string | null;
}

export type ReplayFn = (entry: DeadLetterEntry) => Promise<ReplayResult>;

export interface DeadLetterAdmin {
  journals(): ReadonlyMap<string, Pick<Journal, 'get' | 'summaries' | 'stats' | 'markReplayed' | 'recordAttempt' | 'delete' | 'clear' | 'route'>>;
  replay: ReplayFn | undefined;
  metrics: Metrics | undefined;
  log: { warn(obj: object, msg: string): void };
}

type Json = (res: ServerResponse, status: number, body: unknown) => void;

const MAX_LIMIT = 1000;

/**
 * Ids being replayed right now, by any request (ids are ULIDs, unique across journals): so
 * two bulk replays, or a bulk and a single one, running at once never send an entry twice.
 */
const inFlight = new Set<string>();

function bad(json: Json, res: ServerResponse, message: string): void {
  json(res, 400, { error: { code: 'BAD_REQUEST', message } });
}

function parseLimit(v: string | null, dflt: number): number | null {
  if (v === null || v === '') return dflt;
  if (!/^\d+$/.test(v)) return null;
  const n = Number(v);
  return n >= 1 && n <= MAX_LIMIT ? n : null;
}

function find(dl: DeadLetterAdmin, id: string): { journal: ReturnType<DeadLetterAdmin['journals']> extends ReadonlyMap<string, infer J> ? J : never; entry: DeadLetterEntry & { acknowledged: boolean } } | null {
  for (const journal of dl.journals().values()) {
    const entry = journal.get(id);
    if (entry !== undefined) return { journal, entry };
  }
  return null;
}

/** Handles /dead-letters and /dead-letters/...; returns false when the path is not one of them. */
export function handleDeadLetters(dl: DeadLetterAdmin, req: IncomingMessage, res: ServerResponse, path: string, query: string, json: Json): boolean {
  if (path !== '/dead-letters' && !path.startsWith('/dead-letters/')) return false;
  const method = req.method ?? 'GET';
  const q = new URLSearchParams(query);
  const journals = dl.journals();
  const route = q.get('route');
  if (route !== null && route !== '' && !journals.has(route)) {
    json(res, 404, { error: { code: 'NOT_FOUND', message: `route ${JSON.stringify(route)} has no dead-letter journal` } });
    return true;
  }
  const selected = route ? [journals.get(route) as NonNullable<ReturnType<typeof journals.get>>] : [...journals.values()];

  if (path === '/dead-letters') {
    if (method === 'GET' || method === 'HEAD') {
      const limit = parseLimit(q.get('limit'), 100);
      if (limit === null) return (bad(json, res, `limit must be an integer from 1 to ${MAX_LIMIT}`), true);
      const rawSince = q.get('since');
      let since = -Infinity;
      if (rawSince !== null && rawSince !== '') {
        since = /^\d+$/.test(rawSince) ? Number(rawSince) : Date.parse(rawSince);
        if (!Number.isFinite(since)) return (bad(json, res, 'since must be an ISO 8601 time or milliseconds since the epoch'), true);
      }
      const after = q.get('after') ?? '';
      const all: DeadLetterSummary[] = [];
      for (const j of selected) for (const s of j.summaries()) if (s.id > after && Date.parse(s.time) >= since) all.push(s);
      all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      const page = all.slice(0, limit);
      const next = all.length > limit ? (page[page.length - 1] as DeadLetterSummary).id : null;
      json(res, 200, { entries: page, next, total: all.length, journals: selected.map((j) => j.stats()) });
      return true;
    }
    if (method === 'DELETE') {
      let deleted = 0;
      for (const j of selected) deleted += j.clear();
      dl.log.warn({ route: route || undefined, deleted }, 'dead letters deleted by admin');
      json(res, 200, { deleted });
      return true;
    }
    json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: `${method} /dead-letters is not allowed` } });
    return true;
  }

  if (path === '/dead-letters/replay') {
    if (method !== 'POST') return (json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'bulk replay is POST' } }), true);
    const limit = parseLimit(q.get('limit'), 100);
    if (limit === null) return (bad(json, res, `limit must be an integer from 1 to ${MAX_LIMIT}`), true);
    const rate = q.get('rate') === null || q.get('rate') === '' ? 10 : Number(q.get('rate'));
    if (!Number.isFinite(rate) || rate <= 0 || rate > 1000) return (bad(json, res, 'rate must be a number of replays per second, above 0 and at most 1000'), true);
    const force = q.get('force') === 'true';
    const picked: Array<{ journal: (typeof selected)[number]; id: string }> = [];
    let skipped = 0;
    for (const j of selected) {
      for (const s of j.summaries()) {
        if (s.replayed !== null || !s.bodyKept || (s.delivery === 'unknown' && !force) || inFlight.has(s.id)) {
          skipped++;
          continue;
        }
        picked.push({ journal: j, id: s.id });
      }
    }
    // Oldest first across every selected journal, then `limit` of them (ids sort by time).
    picked.sort((a, b) => (a.id < b.id ? -1 : 1));
    picked.splice(limit);
    void (async () => {
      const results: Array<{ id: string; status: number; result: string; error: string | null }> = [];
      const gap = 1000 / rate;
      // Still to send: not deleted, replayed or taken by another replay (single or bulk)
      // since it was picked. Checked again after the wait, as that can happen meanwhile.
      const pending = (journal: (typeof picked)[number]['journal'], id: string) => {
        const entry = journal.get(id);
        return entry !== undefined && entry.replayed === null && !inFlight.has(id) ? entry : undefined;
      };
      let sent = 0;
      for (const { journal, id } of picked) {
        if (pending(journal, id) === undefined) {
          skipped++;
          continue;
        }
        if (sent > 0) await new Promise((r) => setTimeout(r, gap));
        const entry = pending(journal, id);
        if (entry === undefined) {
          skipped++;
          continue;
        }
        sent++;
        results.push({ id, ...(await replayOne(dl, journal, entry)) });
      }
      json(res, 200, { replayed: results.filter((r) => r.result === 'success').length, failed: results.filter((r) => r.result !== 'success').length, skipped, results });
    })();
    return true;
  }

  const m = /^\/dead-letters\/([0-9A-Za-z]{26})(\/replay)?$/.exec(path);
  if (!m) return (json(res, 404, { error: { code: 'NOT_FOUND', message: `no admin endpoint ${path}` } }), true);
  const id = (m[1] as string).toUpperCase();
  const found = find(dl, id);
  if (found === null) return (json(res, 404, { error: { code: 'NOT_FOUND', message: `no dead letter ${id}` } }), true);
  if (m[2] === undefined) {
    if (method === 'GET' || method === 'HEAD') return (json(res, 200, found.entry), true);
    if (method === 'DELETE') {
      found.journal.delete(id);
      dl.log.warn({ route: found.entry.route, id }, 'dead letter deleted by admin');
      return (json(res, 200, { deleted: 1 }), true);
    }
    return (json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: `${method} is not allowed here` } }), true);
  }
  if (method !== 'POST') return (json(res, 405, { error: { code: 'METHOD_NOT_ALLOWED', message: 'replay is POST' } }), true);
  const entry = found.entry;
  const force = q.get('force') === 'true';
  if (!entry.bodyKept) return (json(res, 409, { error: { code: 'BODY_NOT_KEPT', message: 'the body of this request was not kept (streamed, or over maxBodyBytes); it cannot be replayed' } }), true);
  if (entry.delivery === 'unknown' && !force) {
    json(res, 409, { error: { code: 'DELIVERY_UNKNOWN', message: 'this request may already have reached the upstream and been applied (delivery: unknown); replay it with ?force=true if a duplicate is acceptable or the upstream drops it by Idempotency-Key' } });
    return true;
  }
  if (entry.replayed !== null && !force) return (json(res, 409, { error: { code: 'ALREADY_REPLAYED', message: `already replayed at ${entry.replayed.at} (status ${entry.replayed.status}); use ?force=true to send it again` } }), true);
  if (inFlight.has(id)) return (json(res, 409, { error: { code: 'REPLAY_IN_PROGRESS', message: 'a replay of this entry (single or bulk) is in flight; look at the entry again when it has answered' } }), true);
  void replayOne(dl, found.journal, entry).then((r) => json(res, r.result === 'success' ? 200 : 502, { id, ...r }));
  return true;
}

async function replayOne(dl: DeadLetterAdmin, journal: ReturnType<DeadLetterAdmin['journals']> extends ReadonlyMap<string, infer J> ? J : never, entry: DeadLetterEntry): Promise<{ status: number; result: 'success' | 'failure'; error: string | null }> {
  if (dl.replay === undefined) return { status: 0, result: 'failure', error: 'replay is not available' };
  let r: ReplayResult;
  // Taken before the first await: the callers check inFlight and call this in one go.
  inFlight.add(entry.id);
  try {
    r = await dl.replay(entry);
  } catch (err) {
    r = { status: 0, error: String(err) };
  } finally {
    inFlight.delete(entry.id);
  }
  const ok = r.status >= 200 && r.status < 300;
  if (ok) journal.markReplayed(entry.id, r.status);
  else journal.recordAttempt(entry.id, r.status, r.error);
  dl.metrics?.deadLettersReplayed.labels(entry.route, ok ? 'success' : 'failure').inc();
  dl.log.warn({ route: entry.route, id: entry.id, status: r.status, error: r.error ?? undefined }, ok ? 'dead letter replayed' : 'dead letter replay failed');
  return { status: r.status, result: ok ? 'success' : 'failure', error: r.error };
}
