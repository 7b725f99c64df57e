#!/usr/bin/env node
// Outrigger benchmark suite. `npm run bench` builds the proxy and runs this.
// Options:
//   --scenario NAME   repeatable or comma list (default: all, in the order below)
//   --duration S      seconds per measured round (default 10)
//   --rounds N        rounds per target, interleaved A B A B (default 3)
//   --warmup S        warm-up seconds per target before the rounds (default 2; 0 in --smoke)
//   --targets LIST    restrict targets: direct,outrigger,undici-ref,dispatch-ref,http-proxy-ref,tunnel-ref
//   --smoke           every scenario 1 second, 1 round, no warm-up (keeps the scripts working)
//   --out DIR         where the JSON results go (default bench/results)
//   --update-results  also write the run into bench/RESULTS.md, between its
//                     <!-- bench:begin --> and <!-- bench:end --> markers
//   --help
import { parseArgs } from 'node:util';
import { mkdirSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import os from 'node:os';
import { createRequire } from 'node:module';
import { installCleanup, clockTicks, killAll } from './lib/proc.js';
import { mdTable } from './lib/common.js';

const here = fileURLToPath(new URL('.', import.meta.url));
export const SCENARIOS = ['throughput', 'latency', 'access-log', 'fail-fast', 'retries', 'memory', 'young-generation', 'websocket', 'websocket-relay', 'grpc-unary', 'h2c-to-h1', 'route-scale'];
const ALL_TARGETS = ['direct', 'outrigger', 'undici-ref', 'dispatch-ref', 'http-proxy-ref', 'tunnel-ref', 'floor-ref'];

const USAGE = `Usage: node bench/run.js [--scenario NAME]... [--duration S] [--rounds N] [--warmup S]
                         [--targets LIST] [--smoke] [--out DIR] [--update-results]
Scenarios: ${SCENARIOS.join(', ')}
Targets:   ${ALL_TARGETS.join(', ')}`;

function parse() {
  const { values } = parseArgs({
    options: {
      scenario: { type: 'string', multiple: true },
      duration: { type: 'string' },
      rounds: { type: 'string' },
      warmup: { type: 'string' },
      targets: { type: 'string' },
      smoke: { type: 'boolean', default: false },
      out: { type: 'string' },
      'update-results': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const scenarios = (values.scenario || SCENARIOS).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const s of scenarios) if (!SCENARIOS.includes(s)) throw new Error(`unknown scenario "${s}"\n${USAGE}`);
  const targets = values.targets ? values.targets.split(',').map((s) => s.trim()) : ALL_TARGETS;
  for (const t of targets) if (!ALL_TARGETS.includes(t)) throw new Error(`unknown target "${t}"\n${USAGE}`);
  const num = (v, def, what, min) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${what} expects a number ≥ ${min}, got "${v}"`);
    return n;
  };
  const smoke = values.smoke;
  if (smoke && values['update-results']) throw new Error('--update-results does not go with --smoke: a smoke run is not a measurement');
  return {
    scenarios,
    targets,
    smoke,
    durationGiven: values.duration !== undefined,
    duration: smoke ? 1 : num(values.duration, 10, 'duration', 1),
    rounds: smoke ? 1 : Math.round(num(values.rounds, 3, 'rounds', 1)),
    warmup: smoke ? 0 : num(values.warmup, 2, 'warmup', 0),
    out: resolve(values.out || join(here, 'results')),
    updateResults: values['update-results'],
    argv: process.argv.slice(2),
  };
}

function machine() {
  let cpuModel = os.cpus()[0]?.model || 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1].trim();
  } catch {
    /* not Linux */
  }
  const require = createRequire(import.meta.url);
  const version = (p) => {
    try {
      return require(`${p}/package.json`).version;
    } catch {
      return null;
    }
  };
  return {
    cores: os.cpus().length,
    cpuModel,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    kernel: `${os.type()} ${os.release()}`,
    clockTicks: clockTicks(),
    autocannon: version('autocannon'),
    undici: version('undici'),
    httpProxy: version('http-proxy'),
    ws: version('ws'),
  };
}

function updateResultsMd(doc, opts, info, startedAt, log) {
  const file = join(here, 'RESULTS.md');
  const begin = '<!-- bench:begin -->';
  const end = '<!-- bench:end -->';
  const text = existsSync(file) ? readFileSync(file, 'utf8') : `# Benchmark results\n\n${begin}\n${end}\n`;
  const i = text.indexOf(begin);
  const j = text.indexOf(end);
  if (i === -1 || j < i) {
    log(`RESULTS.md has no ${begin} … ${end} markers; not updated`);
    return;
  }
  // Demote the run's headings by one level so they nest under RESULTS.md's own.
  const body = doc
    .join('\n')
    .replace(/^# Outrigger benchmarks[^\n]*\n+/, '')
    .replace(/^(#+) /gm, '#$1 ');
  const block = [
    begin,
    `<!-- written by \`node bench/run.js ${opts.argv.join(' ')}\`; edit outside the markers -->`,
    '',
    `Run of ${startedAt.slice(0, 16).replace('T', ' ')} UTC: \`node bench/run.js ${opts.argv.join(' ')}\``,
    `(${info.cores} cores, ${info.cpuModel}, Node ${info.node}).`,
    '',
    body.trim(),
    end,
  ].join('\n');
  writeFileSync(file, text.slice(0, i) + block + text.slice(j + end.length));
  log(`bench/RESULTS.md updated`);
}

const stamp = () => new Date().toISOString().replace(/[:.]/g, '-');

async function main() {
  installCleanup();
  let opts;
  try {
    opts = parse();
  } catch (err) {
    process.stderr.write(`${err.message}\n`);
    process.exitCode = 2;
    return;
  }
  const info = machine();
  const startedAt = new Date().toISOString();
  const log = (msg) => process.stderr.write(`[bench] ${msg}\n`);
  mkdirSync(opts.out, { recursive: true });

  const doc = []; // everything printed on stdout, for --update-results
  const print = (text) => {
    doc.push(text);
    console.log(text);
  };
  const out = [];
  out.push(`# Outrigger benchmarks${opts.smoke ? ' (smoke run: 1 s, 1 round — not a measurement)' : ''}`);
  out.push('');
  out.push(
    `Machine: ${info.cores} cores, ${info.cpuModel}, ${info.memoryGB} GB, ${info.kernel}, Node ${info.node}. ` +
      `autocannon ${info.autocannon}, undici ${info.undici}, http-proxy ${info.httpProxy}. ` +
      `${opts.rounds} round(s) × ${opts.duration}s per target, warm-up ${opts.warmup}s.`,
  );
  print(out.join('\n'));

  const results = [];
  const allChecks = [];
  let failed = 0;
  for (const name of opts.scenarios) {
    const mod = await import(`./scenarios/${name}.js`);
    const ctx = {
      ...opts,
      scenario: name,
      wants: (kind) => opts.targets.includes(kind),
      log: (msg) => log(`${name}: ${msg}`),
    };
    log(`${name}: start`);
    const t0 = Date.now();
    let res;
    try {
      res = await mod.run(ctx);
    } catch (err) {
      failed++;
      log(`${name}: FAILED: ${err.stack || err}`);
      print(`\n## ${name}\n\nFAILED: ${String(err.message || err).split('\n')[0]}\n`);
      results.push({ scenario: name, error: String(err.stack || err) });
      continue;
    }
    const elapsedS = (Date.now() - t0) / 1000;
    log(`${name}: done in ${elapsedS.toFixed(1)}s`);
    const section = [`\n## ${res.title || name}`, ''];
    if (res.upstream) section.push(`Upstream: ${res.upstream}.`, '');
    section.push(res.table);
    if (res.notes?.length) section.push('', ...res.notes.map((n) => `- ${n}`));
    print(section.join('\n'));
    for (const c of res.checks || []) allChecks.push({ scenario: name, ...c });
    const record = {
      scenario: name,
      smoke: opts.smoke,
      startedAt: new Date(t0).toISOString(),
      elapsedS,
      options: { duration: opts.duration, rounds: opts.rounds, warmup: opts.warmup, targets: opts.targets },
      machine: info,
      upstream: res.upstream,
      summary: res.summary,
      checks: res.checks || [],
      notes: res.notes || [],
      table: res.table,
      raw: res.raw,
    };
    results.push(record);
    const file = join(opts.out, `${name}-${opts.smoke ? 'smoke-' : ''}${stamp()}.json`);
    writeFileSync(file, `${JSON.stringify(record, null, 2)}\n`);
    log(`${name}: raw rounds written to ${file}`);
  }

  if (allChecks.length) {
    const mark = (m) => (m === true ? 'met' : m === false ? '**not met**' : 'not evaluated');
    print(
      `\n## Targets (issue #4)\n\n${mdTable(
        ['scenario', 'target', 'measured', 'status'],
        allChecks.map((c) => [c.scenario, c.target, c.measured, mark(c.met)]),
      )}${opts.smoke ? '\n\n(smoke run: these figures are not measurements)' : ''}`,
    );
  }

  const all = { startedAt, finishedAt: new Date().toISOString(), options: opts, machine: info, checks: allChecks, scenarios: results };
  const latest = join(opts.out, opts.smoke ? 'latest-smoke.json' : 'latest.json');
  writeFileSync(latest, `${JSON.stringify(all, null, 2)}\n`);
  log(`run summary written to ${latest}`);
  if (opts.updateResults) updateResultsMd(doc, opts, info, startedAt, log);
  if (failed) {
    log(`${failed} scenario(s) failed`);
    process.exitCode = 1;
  }
}

main()
  .catch((err) => {
    process.stderr.write(`[bench] ${err.stack || err}\n`);
    process.exitCode = 2;
  })
  .finally(() => killAll());
