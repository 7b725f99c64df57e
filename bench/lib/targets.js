// The targets a scenario compares: direct (the upstream itself), outrigger, and
// the two reference proxies, each in its own process.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, makeTmpDir, startProcess, waitForPort, tail } from './proc.js';
import { startOutrigger } from './outrigger.js';

const here = fileURLToPath(new URL('.', import.meta.url));

export const TARGET_LABELS = {
  direct: 'direct (no proxy)',
  outrigger: 'Outrigger',
  'undici-ref': 'undici reference (Pool.stream)',
  'dispatch-ref': 'dispatch-min (Pool.dispatch, raw headers)',
  'http-proxy-ref': 'node-http-proxy (keep-alive agent)',
  'floor-ref': 'node:http answering alone (the server floor)',
};

async function startNodeRef(name, script, upstreamUrl) {
  const port = await freePort();
  const dir = makeTmpDir(`outrigger-bench-${name}-`);
  const errFile = join(dir, 'stderr.log');
  const proc = startProcess(process.execPath, [join(here, script), '--port', String(port), '--target', upstreamUrl], {
    stderrFile: errFile,
    stdoutFile: join(dir, 'stdout.log'),
  });
  try {
    await waitForPort(port, { proc, what: name });
  } catch (err) {
    await proc.stop();
    throw new Error(`${err.message}\n${tail(errFile)}`);
  }
  return { name, kind: name, url: `http://127.0.0.1:${port}`, pid: proc.pid, stop: () => proc.stop() };
}

/**
 * Start one target in front of upstream ({ url, pid }). Returns
 * { name, kind, url, pid, stop(), ... }. For "direct", pid is the upstream's.
 */
export async function startTarget(kind, upstream, opts = {}) {
  switch (kind) {
    case 'direct':
      return { name: opts.name || 'direct', kind, url: upstream.url, pid: upstream.pid, stop: async () => {} };
    case 'outrigger':
      return startOutrigger({ upstreamUrl: upstream.url, accessLog: !!opts.accessLog, name: opts.name || 'outrigger', nodeOptions: opts.nodeOptions ?? null, nodeFlags: opts.nodeFlags ?? [] });
    case 'undici-ref':
      return startNodeRef('undici-ref', 'ref-undici.js', upstream.url);
    case 'dispatch-ref':
      return startNodeRef('dispatch-ref', 'ref-dispatch.js', upstream.url);
    case 'http-proxy-ref':
      return startNodeRef('http-proxy-ref', 'ref-http-proxy.js', upstream.url);
    case 'floor-ref':
      return startNodeRef('floor-ref', 'ref-floor.js', upstream.url);
    default:
      throw new Error(`unknown target ${kind}`);
  }
}
