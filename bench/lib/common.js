// Shared bits for scenarios: medians, formatting, markdown tables, the interleaved round loop.
export function median(values) {
  const v = values.filter((x) => typeof x === 'number' && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** Format a number with `digits` decimals; null/undefined become an em dash. */
export function fmt(x, digits = 0) {
  if (x === null || x === undefined || Number.isNaN(x)) return '—';
  if (typeof x !== 'number') return String(x);
  return x.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export const ms = (us, digits = 2) => (us === null || us === undefined ? '—' : fmt(us / 1000, digits));
export const ratio = (a, b, digits = 2) => (a == null || b == null || b === 0 ? '—' : `${fmt(a / b, digits)}×`);

/** Markdown table; a column is right-aligned when every cell in it looks numeric. */
export function mdTable(columns, rows) {
  const esc = (c) => String(c).replace(/\|/g, '\\|');
  const numeric = (c) => /^[-+]?[\d,.]+\s*(×|%|µs|ms|MB)?$|^—$/.test(String(c).trim());
  const right = columns.map((_, i) => i > 0 && rows.length > 0 && rows.every((r) => numeric(r[i] ?? '')));
  const lines = [`| ${columns.map(esc).join(' | ')} |`, `|${right.map((r) => (r ? '---:' : '---')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

export function statusSummary(codes) {
  return Object.entries(codes || {})
    .sort(([a], [b]) => Number(a) - Number(b))
    .map(([c, n]) => `${c}: ${n}`)
    .join(', ');
}

/**
 * Interleave targets across rounds, each round starting one later (A B C, B C A, C A B ...). `measure(target, round)`
 * returns one raw result. An optional warm-up pass runs each target once first.
 * Returns { byTarget: { name: [results...] }, raw: [{ round, target, result }] }.
 */
export async function interleave(ctx, targets, measure, { warmup = true } = {}) {
  const byTarget = Object.fromEntries(targets.map((t) => [t.name, []]));
  const raw = [];
  if (warmup && ctx.warmup > 0) {
    for (const t of targets) {
      ctx.log(`  warm-up ${t.name} (${ctx.warmup}s)`);
      await measure(t, -1, ctx.warmup);
    }
  }
  for (let round = 0; round < ctx.rounds; round++) {
    // Each round starts one target later, so no target always follows the same one: what a
    // round leaves behind (warm caches, a busy upstream, a GC due) falls on each in turn.
    for (let i = 0; i < targets.length; i++) {
      const t = targets[(i + round) % targets.length];
      ctx.log(`  round ${round + 1}/${ctx.rounds} ${t.name} (${ctx.duration}s)`);
      const result = await measure(t, round, ctx.duration);
      byTarget[t.name].push(result);
      raw.push({ round, target: t.name, result });
    }
  }
  return { byTarget, raw };
}

/** Median of f(result) over a target's rounds. */
export const med = (results, f) => median((results || []).map(f));

/** A target check line: { target, measured, met } where met is true, false or null (not measured). */
export function check(target, measured, met) {
  return { target, measured, met: met === null || met === undefined ? null : !!met };
}

/** Start targets one by one; on failure stop the ones already started. */
export async function startAll(starters) {
  const started = [];
  try {
    for (const s of starters) started.push(await s());
  } catch (err) {
    await stopAll(started);
    throw err;
  }
  return started;
}

export async function stopAll(list) {
  for (const t of [...list].reverse()) {
    try {
      await t.stop();
    } catch {
      /* ignore */
    }
  }
}
