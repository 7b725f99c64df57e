// `npm run demo`: the flaky upstream on 127.0.0.1:18080 and the proxy on config/demo.yaml.
import { resolve } from 'node:path';
import { start } from '../app.js';
import { startFlakyUpstream } from './flaky-upstream.js';
import { watchParent } from '../util/parent.js';

const parentPid = process.ppid;

const upstream = await startFlakyUpstream({ port: Number(process.env.DEMO_UPSTREAM_PORT ?? 18080) });
const app = await start({ configPath: resolve(process.env.OUTRIGGER_CONFIG ?? 'config/demo.yaml') });
process.stderr.write(`
Outrigger demo: proxy on :${app.proxy.port}, admin on :${app.admin.port}, metrics on :${app.metricsAddress.port}

  curl -i localhost:${app.proxy.port}/items              # 30% of upstream answers are 503; retries hide them (see x-outrigger-attempts)
  curl -i localhost:${app.proxy.port}/slow               # the 1s timeout fires: fallback with x-outrigger-fallback: timeout
  curl -X POST localhost:18080/fault/down        # the upstream starts resetting every connection
  for i in $(seq 6); do curl -s -o /dev/null -w '%{http_code} ' localhost:${app.proxy.port}/items; done; echo
  curl -s localhost:${app.admin.port}/health             # the items breaker is open; status degraded
  curl -X POST localhost:18080/fault/up          # heal it; after 5s one probe closes the breaker
  curl -s localhost:${app.metricsAddress.port}/metrics | grep outrigger_

Ctrl-C stops both.
`);
let stopping = false;
const stop = () => {
  // One Ctrl-C arrives twice under `npm run demo` (from the terminal and forwarded by npm).
  if (stopping) return;
  stopping = true;
  void app.drain().finally(() => {
    upstream.close();
    process.exit(0);
  });
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);
if (process.env.npm_lifecycle_event) watchParent(parentPid, stop);
