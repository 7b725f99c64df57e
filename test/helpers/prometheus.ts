// A real Prometheus server for tests: started on an ephemeral loopback port with its TSDB in
// a temporary directory, scraping the targets given, and a small client for its HTTP API.
// The binary is required, never optional: a test that needs Prometheus fails without it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** /usr/bin/prometheus (Debian package prometheus, which .ci/run installs); PROMETHEUS_BIN overrides. */
export const PROMETHEUS_BIN = process.env.PROMETHEUS_BIN || '/usr/bin/prometheus';

export interface ScrapeTarget {
  /** host:port of a /metrics endpoint. */
  address: string;
  /** Target labels added to every series, as a ServiceMonitor's relabelling would (namespace, pod, ...). */
  labels?: Record<string, string>;
  metricsPath?: string;
}

export interface PromSample {
  metric: Record<string, string>;
  /** Instant queries. */
  value?: [number, string];
  /** Range queries. */
  values?: Array<[number, string]>;
}

export interface PromResult {
  resultType: 'vector' | 'matrix' | 'scalar' | 'string';
  result: PromSample[] | [number, string];
}

export interface Prometheus {
  url: string;
  dir: string;
  /** Everything Prometheus logged so far, for failure messages. */
  output(): string;
  /** GET an API path; throws on a transport error, on a non-JSON answer or on status "error". */
  api<T = unknown>(path: string, params?: Record<string, string | string[]>): Promise<T>;
  /** Instant query (at `time`, Unix seconds, or now). */
  query(expr: string, time?: number): Promise<PromResult>;
  /** Range query from `start` to `end` (Unix seconds) every `step` seconds. */
  queryRange(expr: string, start: number, end: number, step: number): Promise<PromResult>;
  /** GET /api/v1/label/<name>/values with match[] selectors. */
  labelValues(name: string, match: string[]): Promise<string[]>;
  /** Polls an instant query until `accept` holds on its samples; bounded by timeoutMs. */
  waitForQuery(expr: string, accept: (samples: PromSample[]) => boolean, what: string, timeoutMs?: number): Promise<PromSample[]>;
  stop(): Promise<void>;
}

const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

/** Error raised for an answer with status "error" (an invalid query, say). */
export class PromApiError extends Error {
  constructor(
    readonly errorType: string,
    message: string,
  ) {
    super(message);
  }
}

export async function startPrometheus(opts: { targets: ScrapeTarget[]; scrapeInterval?: string; jobName?: string; startTimeoutMs?: number }): Promise<Prometheus> {
  if (!existsSync(PROMETHEUS_BIN)) {
    throw new Error(`${PROMETHEUS_BIN} is missing: install the Debian package prometheus (.ci/run does) or set PROMETHEUS_BIN`);
  }
  const interval = opts.scrapeInterval ?? '1s';
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-prometheus-'));
  const configFile = join(dir, 'prometheus.yml');
  writeFileSync(
    configFile,
    stringify({
      global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
      scrape_configs: [
        {
          job_name: opts.jobName ?? 'outrigger',
          metrics_path: opts.targets[0]?.metricsPath ?? '/metrics',
          static_configs: opts.targets.map((t) => ({ targets: [t.address], ...(t.labels ? { labels: t.labels } : {}) })),
        },
      ],
    }),
  );
  const child: ChildProcess = spawn(
    PROMETHEUS_BIN,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      // Port 0: the kernel picks a free port, read back from the "Listening on" log line.
      '--web.listen-address=127.0.0.1:0',
      '--log.level=info',
      '--storage.tsdb.retention.time=1h',
    ],
    { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let port = 0;
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => {
    out += c.toString();
    if (port === 0) {
      const m = /msg="Listening on" address=127\.0\.0\.1:(\d+)/.exec(out);
      if (m) port = Number(m[1]);
    }
  });
  let exited: number | string | null | undefined;
  const exit = new Promise<void>((ok) => {
    child.once('exit', (code, signal) => {
      exited = code ?? signal;
      ok();
    });
    child.once('error', (err) => {
      out += `\nspawn error: ${err.message}`;
      exited ??= 'spawn-error';
      ok();
    });
  });

  // Should the test process end without afterAll (a crash, a worker torn down), take Prometheus with it.
  const killOnExit = (): void => {
    if (exited === undefined) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  let stopped = false;
  const stop = async (): Promise<void> => {
    if (stopped) return;
    stopped = true;
    process.off('exit', killOnExit);
    if (exited === undefined) {
      child.kill('SIGTERM');
      const done = await Promise.race([exit.then(() => true), sleep(10_000).then(() => false)]);
      if (!done) {
        child.kill('SIGKILL');
        await Promise.race([exit, sleep(5_000)]);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };

  let url = '';
  const api = async <T>(path: string, params: Record<string, string | string[]> = {}): Promise<T> => {
    const qs = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) for (const one of Array.isArray(v) ? v : [v]) qs.append(k, one);
    const res = await fetch(`${url}${path}${qs.size ? `?${qs.toString()}` : ''}`, { signal: AbortSignal.timeout(10_000) });
    const text = await res.text();
    let body: { status?: string; data?: T; errorType?: string; error?: string };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new Error(`GET ${path}: HTTP ${res.status}, not JSON: ${text.slice(0, 500)}`);
    }
    if (body.status !== 'success') throw new PromApiError(body.errorType ?? 'unknown', `GET ${path} ${JSON.stringify(params)}: ${body.errorType ?? ''}: ${body.error ?? text}`);
    return body.data as T;
  };

  const prom: Prometheus = {
    get url() {
      return url;
    },
    dir,
    output: () => out,
    api,
    query: (expr, time) => api<PromResult>('/api/v1/query', { query: expr, ...(time !== undefined ? { time: String(time) } : {}) }),
    queryRange: (expr, start, end, step) => api<PromResult>('/api/v1/query_range', { query: expr, start: String(start), end: String(end), step: String(step) }),
    labelValues: (name, match) => api<string[]>(`/api/v1/label/${encodeURIComponent(name)}/values`, { 'match[]': match }),
    async waitForQuery(expr, accept, what, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      let last: unknown;
      for (;;) {
        try {
          const r = await prom.query(expr);
          const samples = r.resultType === 'vector' ? (r.result as PromSample[]) : [];
          if (accept(samples)) return samples;
          last = samples;
        } catch (err) {
          if (err instanceof PromApiError) throw err;
          last = (err as Error).message;
        }
        if (Date.now() > end) throw new Error(`Prometheus: timed out after ${timeoutMs}ms waiting for ${what} (${expr}); last: ${JSON.stringify(last)}`);
        await sleep(200);
      }
    },
    stop,
  };

  // Ready: the port is known and GET /-/ready answers 200 (TSDB open, config loaded).
  const deadline = Date.now() + (opts.startTimeoutMs ?? 30_000);
  let last = '';
  for (;;) {
    if (exited !== undefined) {
      await stop();
      throw new Error(`prometheus exited (${String(exited)}) before it was ready:\n${out}`);
    }
    if (port !== 0) {
      url = `http://127.0.0.1:${port}`;
      try {
        const r = await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(2_000) });
        if (r.status === 200) return prom;
        last = `status ${r.status}`;
      } catch (err) {
        last = (err as Error).message;
      }
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus was not ready in time (last: ${last || 'no "Listening on" line yet'}):\n${out}`);
    }
    await sleep(100);
  }
}

/** The values of an instant-vector answer, or of every point of a matrix. */
export function sampleValues(r: PromResult): number[] {
  if (r.resultType === 'scalar') return [Number((r.result as [number, string])[1])];
  const samples = r.result as PromSample[];
  return samples.flatMap((s) => (s.values ?? (s.value ? [s.value] : [])).map((v) => Number(v[1])));
}

/** Escapes a label value for a PromQL regex matcher, the way Grafana does for multi-value variables. */
export function regexEscape(s: string): string {
  return s.replace(/[\\^$*+?.()|[\]{}]/g, '\\$&');
}
