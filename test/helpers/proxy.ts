// Starts Outrigger in-process on ephemeral loopback ports from a config object.
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { start, type Outrigger } from '../../src/app.js';
import { createLogger, type LogLevel } from '../../src/log.js';

export interface TestProxy {
  app: Outrigger;
  url: string;
  adminUrl: string;
  metricsUrl: string;
  configPath: string;
  dir: string;
  /** Log lines the proxy wrote, parsed. */
  logs: Array<Record<string, unknown>>;
  /** Rewrites the config file (as YAML) without reloading. */
  writeConfig(cfg: Record<string, unknown>): void;
  close(): Promise<void>;
}

export const LOOPBACK_LISTENERS = {
  listen: '127.0.0.1:0',
  admin: { listen: '127.0.0.1:0' },
  metrics: { listen: '127.0.0.1:0' },
};

export async function startProxy(
  cfg: Record<string, unknown>,
  opts: { env?: NodeJS.ProcessEnv; watch?: boolean; logLevel?: string; processMetrics?: boolean } = {},
): Promise<TestProxy> {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-test-'));
  const configPath = join(dir, 'outrigger.yaml');
  const full = { ...LOOPBACK_LISTENERS, ...cfg };
  writeFileSync(configPath, stringify(full));
  const logs: Array<Record<string, unknown>> = [];
  // The production logger (its options and its access-log writer), writing into `logs`.
  const logger = createLogger((opts.logLevel ?? (cfg.log as { level?: string } | undefined)?.level ?? 'info') as LogLevel, {
    write(line: string) {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    },
  });
  const app = await start({ configPath, env: opts.env ?? {}, logger, processMetrics: opts.processMetrics ?? false, watch: opts.watch ?? false });
  return {
    app,
    url: `http://127.0.0.1:${app.proxy.port}`,
    adminUrl: `http://127.0.0.1:${app.admin.port}`,
    metricsUrl: `http://127.0.0.1:${app.metricsAddress.port}`,
    configPath,
    dir,
    logs,
    writeConfig(next) {
      writeFileSync(configPath, stringify({ ...LOOPBACK_LISTENERS, ...next }));
    },
    async close() {
      await app.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A minimal one-route config to `upstreamUrl`, with route overrides. */
export function oneRoute(upstreamUrl: string | string[], route: Record<string, unknown> = {}, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    upstreams: { up: { endpoints: Array.isArray(upstreamUrl) ? upstreamUrl : [upstreamUrl] } },
    routes: [{ name: 'r1', match: { pathPrefix: '/' }, upstream: 'up', ...route }],
    ...extra,
  };
}

export async function text(res: Response): Promise<string> {
  return await res.text();
}

/** Reads /metrics and returns the value of one sample line, or undefined. */
export async function metricValue(metricsUrl: string, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const body = await (await fetch(`${metricsUrl}/metrics`)).text();
  for (const line of body.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const ok = Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`));
    if (ok) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

/** One breaker's entry in GET /breakers on the admin port (oneRoute's r1 unless named); throws when it is not listed. */
export async function breakerState(px: { adminUrl: string }, name = 'r1'): Promise<Record<string, unknown>> {
  const list = (await (await fetch(`${px.adminUrl}/breakers`)).json()) as Array<Record<string, unknown>>;
  const b = list.find((x) => x.name === name);
  if (!b) throw new Error(`no breaker ${name}`);
  return b;
}
