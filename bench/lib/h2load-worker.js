// h2load load generator child for the h2c-to-h1 scenario (same IPC protocol as
// load-worker.js: 'ready', then 'go' with opts, then 'result').
//
// opts: { url, clients, streams, duration (s), h1, bin }
// Runs `h2load -D duration -c clients -m streams -t 1 --log-file F url` (cleartext HTTP/2
// with prior knowledge, h2load's default for http://; with h1, `--h1`: HTTP/1.1, where
// -m above 1 would pipeline), in its own process, so h2load's CPU and this process's are
// never counted against the proxy. Parses h2load's summary (requests done and succeeded,
// status classes) and its per-request log (status and µs to the end of the response) into a
// µs histogram. h2load is killed 15 s past its duration.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Histogram } from './histogram.js';
import { serveLoad } from './worker-protocol.js';

function runH2load(bin, args, timeoutMs) {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
    const killer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(killer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

const num = (re, text) => {
  const m = re.exec(text);
  return m ? Number(m[1]) : null;
};

async function run(opts) {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-bench-h2load-'));
  const logFile = join(dir, 'requests.tsv');
  try {
    const args = ['-D', String(opts.duration), '-c', String(opts.clients), '-m', String(opts.streams), '-t', '1', '--log-file', logFile, ...(opts.h1 ? ['--h1'] : []), opts.url];
    const started = process.hrtime.bigint();
    const r = await runH2load(opts.bin || 'h2load', args, (opts.duration + 15) * 1000);
    const wallS = Number(process.hrtime.bigint() - started) / 1e9;
    const out = r.stdout;
    if (r.code !== 0 || !/requests: /.test(out)) {
      return { supported: false, reason: `h2load exited with ${r.code ?? r.signal}: ${(r.stderr || out).trim().split('\n').slice(-3).join(' / ')}`, responses: 0 };
    }
    const done = num(/(\d+) done/, out) ?? 0;
    if (done === 0) {
      const hint = out.split('\n').find((l) => /error|refused|failed/i.test(l)) || (r.stderr || '').trim().split('\n').pop() || '';
      return { supported: false, reason: `h2load completed no request${hint ? `: ${hint.trim()}` : ''}`, responses: 0 };
    }
    const succeeded = num(/(\d+) succeeded/, out) ?? 0;
    const statusClasses = {};
    const sc = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
    if (sc) ['2xx', '3xx', '4xx', '5xx'].forEach((k, i) => (statusClasses[k] = Number(sc[i + 1])));
    const hist = new Histogram();
    let logged = 0;
    let text = '';
    try {
      text = readFileSync(logFile, 'utf8');
    } catch {
      /* no log: latencies unknown */
    }
    for (const line of text.split('\n')) {
      const f = line.split('\t');
      if (f.length < 3) continue;
      logged++;
      if (Number(f[1]) >= 200 && Number(f[1]) < 300) hist.record(Number(f[2]));
    }
    return {
      supported: true,
      responses: done,
      durationS: opts.duration,
      wallS,
      rps: succeeded / opts.duration,
      h2loadReqPerS: num(/finished in [\d.]+\w+, ([\d.]+) req\/s/, out),
      succeeded,
      // In a timed run h2load cuts the streams still in flight when the time is up (started −
      // done); they are neither done nor errors. Errors: failed, errored, timed out, not 2xx.
      started: num(/(\d+) started/, out),
      errors: (num(/(\d+) failed/, out) ?? 0) + (num(/(\d+) errored/, out) ?? 0) + (num(/(\d+) timeout/, out) ?? 0) + (statusClasses['3xx'] ?? 0) + (statusClasses['4xx'] ?? 0) + (statusClasses['5xx'] ?? 0),
      statusClasses,
      logged,
      latency: hist.summary(),
      summaryLines: out.split('\n').filter((l) => /^(finished in|requests:|status codes:|traffic:)/.test(l)),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

serveLoad(run);
