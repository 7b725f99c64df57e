// Scenario 6, memory: RSS idle, RSS with 1000 open keep-alive connections, and
// the RSS trend over a constant load (3 minutes by default; --duration sets it,
// --smoke makes it 1 s). Bounded: every phase has a fixed duration and stops
// by itself. One round per target (--rounds does not apply).
import { readdirSync } from 'node:fs';
import { startUpstream } from '../lib/upstream.js';
import { startTarget, TARGET_LABELS } from '../lib/targets.js';
import { imageNodeOptions } from '../lib/outrigger.js';
import { runLoad } from '../lib/load.js';
import { rssMB, sleep } from '../lib/proc.js';
import { fmt, median, mdTable, check, stopAll } from '../lib/common.js';

export const name = 'memory';
export const title = 'Memory: RSS idle, at 1000 connections, and over a constant load';
const CONNS = 1000;
const DRIFT_RATE = 2000; // req/s, open loop (staggered overallRate)
const DRIFT_DEFAULT_S = 180;
const IMAGE = 'outrigger-image';

const fdCount = (pid) => {
  try {
    return readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return null;
  }
};

/** Least-squares slope of [t, y] points, in y units per second. */
function slope(points) {
  const n = points.length;
  if (n < 3) return null;
  const mt = points.reduce((a, p) => a + p[0], 0) / n;
  const my = points.reduce((a, p) => a + p[1], 0) / n;
  let num = 0;
  let den = 0;
  for (const [t, y] of points) {
    num += (t - mt) * (y - my);
    den += (t - mt) ** 2;
  }
  return den ? num / den : null;
}

export function driftStats(samples, durationS) {
  const warm = samples.filter(([t]) => t >= durationS * 0.2);
  const third = Math.floor(warm.length / 3);
  const middle = warm.slice(third, 2 * third).map((p) => p[1]);
  const last = warm.slice(2 * third).map((p) => p[1]);
  const s = slope(warm);
  return {
    samples: samples.length,
    startMB: warm.length ? warm[0][1] : null,
    endMB: warm.length ? warm[warm.length - 1][1] : null,
    maxMB: samples.length ? Math.max(...samples.map((p) => p[1])) : null,
    middleThirdMedianMB: median(middle),
    lastThirdMedianMB: median(last),
    slopeMBPerMin: s === null ? null : s * 60,
  };
}

async function measureTarget(ctx, t, { drift, driftS }) {
  await sleep(ctx.smoke ? 500 : 2000);
  const idleMB = rssMB(t.pid);
  ctx.log(`  ${t.name}: idle ${fmt(idleMB, 1)} MB; ${CONNS} connections`);
  const connS = ctx.smoke ? 1 : Math.max(3, Math.min(ctx.duration, 10));
  let fdMax = 0;
  const fdTimer = setInterval(() => {
    fdMax = Math.max(fdMax, fdCount(t.pid) || 0);
  }, 250);
  let conns;
  try {
    conns = await runLoad({
      url: `${t.url}/bench`,
      connections: CONNS,
      overallRate: CONNS, // each connection sends about 1 request per second and stays open
      duration: connS,
      timeout: 20,
      watch: { proxy: t.pid },
      sampleRss: { proxy: t.pid },
    });
  } finally {
    clearInterval(fdTimer);
  }
  const connsMB = conns.rss.proxy.maxMB || rssMB(t.pid);
  let driftResult = null;
  if (drift) {
    ctx.log(`  ${t.name}: constant load ${DRIFT_RATE} req/s for ${driftS}s`);
    await sleep(ctx.smoke ? 200 : 2000);
    const r = await runLoad({
      url: `${t.url}/bench`,
      connections: 32,
      stagger: 16,
      overallRate: DRIFT_RATE,
      duration: driftS,
      watch: { proxy: t.pid },
      sampleRss: { proxy: t.pid },
    });
    driftResult = { ...driftStats(r.rss.proxy.samples, driftS), rps: r.rps, errors: r.errors + r.timeouts, non2xx: r.non2xx, rssSamples: r.rss.proxy.samples, cpu: r.cpu };
  }
  return {
    idleMB,
    connsMB,
    connsFdMax: fdMax,
    connsResponses: conns.responses,
    connsErrors: conns.errors + conns.timeouts,
    drift: driftResult,
    afterMB: rssMB(t.pid),
  };
}

export async function run(ctx) {
  const upstream = await startUpstream();
  // Outrigger twice: under plain `node` (npm start) and with the image's NODE_OPTIONS (its
  // young generation; see the young-generation scenario). The soak runs on the image's.
  const kinds = ['outrigger', 'undici-ref', 'dispatch-ref', 'http-proxy-ref'].filter(ctx.wants).flatMap((k) => (k === 'outrigger' ? [k, IMAGE] : [k]));
  const driftKind = kinds.includes(IMAGE) ? IMAGE : kinds[0];
  const nodeOptions = kinds.includes(IMAGE) ? imageNodeOptions() : null;
  const label = (k) => (k === IMAGE ? `Outrigger, NODE_OPTIONS=${nodeOptions} (the image)` : TARGET_LABELS[k]);
  const driftS = ctx.smoke ? 1 : ctx.durationGiven ? ctx.duration : DRIFT_DEFAULT_S;
  const summary = {};
  const raw = [];
  try {
    // One target at a time, so the others' memory use cannot disturb it.
    for (const kind of kinds) {
      const t = kind === IMAGE ? await startTarget('outrigger', upstream, { name: IMAGE, nodeOptions }) : await startTarget(kind, upstream);
      try {
        const r = await measureTarget(ctx, t, { drift: kind === driftKind, driftS });
        summary[t.name] = r;
        raw.push({ round: 0, target: t.name, result: r });
      } finally {
        await stopAll([t]);
      }
    }
    const rows = kinds.map((k) => {
      const s = summary[k];
      const d = s.drift;
      return [
        label(k),
        fmt(s.idleMB, 1),
        fmt(s.connsMB, 1),
        fmt(s.connsFdMax),
        d ? `${fmt(d.startMB, 1)} → ${fmt(d.endMB, 1)} (max ${fmt(d.maxMB, 1)})` : '—',
        d ? fmt(d.slopeMBPerMin, 2) : '—',
        d ? `${fmt(d.middleThirdMedianMB, 1)} / ${fmt(d.lastThirdMedianMB, 1)}` : '—',
      ];
    });
    const table = mdTable(
      ['target', 'RSS idle MB', `RSS at ${CONNS} conns MB (max)`, 'open fds (max)', `RSS over ${driftS}s load MB`, 'trend MB/min', 'median MB, 2nd / 3rd third'],
      rows,
    );
    const checks = [];
    const o = summary.outrigger;
    if (o) {
      // dispatch-min, the thinnest undici forwarder, says what undici and node:http alone hold.
      const dm = summary['dispatch-ref'];
      const img = summary[IMAGE];
      const vsMin = (mb) => (dm ? `; dispatch-min ${fmt(mb, 1)} MB` : '');
      // Judged on plain node, as before; the image's figure is shown beside it.
      const asImage = (mb) => (img ? `; as the image runs it ${fmt(mb, 1)} MB` : '');
      checks.push(check('RSS idle ≤ 70 MB', `${fmt(o.idleMB, 1)} MB${asImage(img?.idleMB)}${vsMin(dm?.idleMB)}`, o.idleMB <= 70));
      checks.push(check(`RSS at ${CONNS} connections ≤ 150 MB`, `${fmt(o.connsMB, 1)} MB (max ${fmt(o.connsFdMax)} fds)${asImage(img?.connsMB)}${vsMin(dm?.connsMB)}`, o.connsMB <= 150));
      if (img) checks.push(check(`RSS at ${CONNS} connections ≤ 150 MB, as the image runs it (NODE_OPTIONS=${nodeOptions})`, `${fmt(img.connsMB, 1)} MB`, img.connsMB <= 150));
      const d = (img ?? o).drift;
      // An upward trend: a positive slope over the post-warm-up samples that also
      // shows as growth between the middle and last thirds. Judged only on ≥ 60 s.
      const trend = d && d.slopeMBPerMin > 1 && d.lastThirdMedianMB - d.middleThirdMedianMB > 2;
      checks.push(
        check(
          `no upward RSS trend over ${driftS}s of constant load`,
          d ? `${fmt(d.slopeMBPerMin, 2)} MB/min; ${fmt(d.middleThirdMedianMB, 1)} → ${fmt(d.lastThirdMedianMB, 1)} MB` : '—',
          d && driftS >= 60 ? !trend : null,
        ),
      );
    }
    return {
      title,
      upstream: upstream.label,
      table,
      summary,
      raw,
      checks,
      notes: [
        `Idle: RSS (VmRSS from /proc/<pid>/status) ${ctx.smoke ? '0.5' : '2'} s after start-up, before any traffic.`,
        `${CONNS} connections: autocannon holds ${CONNS} keep-alive connections, each sending about 1 request per second (overallRate ${CONNS}); the RSS shown is the maximum sampled every 250 ms.`,
        `Constant load (${label(driftKind)} only): ${DRIFT_RATE} req/s for ${driftS}s (16 staggered autocannon instances); the trend is the least-squares slope over the samples after the first 20%. The trend target is judged only on runs of at least 60 s.`,
        'Targets run one at a time, one round each (--rounds does not apply).',
      ],
    };
  } finally {
    await upstream.stop();
  }
}
