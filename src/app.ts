// Wires the pieces into a running proxy: three listeners, the runtime built from the
// config, reload and drain. main.ts is the CLI around this; tests start it in-process.
import { randomUUID } from 'node:crypto';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { Duplex } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { loadConfigFile, ConfigError, type LoadedConfig } from './config/load.js';
import { ConfigWatcher } from './config/watch.js';
import { Metrics } from './admin/metrics.js';
import { createAdminHandler, createMetricsHandler, createStatusHandler, type AdminState } from './admin/server.js';
import { Operations } from './admin/ops.js';
import type { ReplayResult } from './admin/dead-letters.js';
import type { DeadLetterEntry } from './deadletter/journal.js';
import { accessLogWriter, createLogger, droppedLogLines, effectiveLevel, type Logger } from './log.js';
import { CONNECT_REFUSED, createProxyHandler, type ProxyState } from './proxy/http.js';
import { ProxyError, errorResponse } from './errors.js';
import { Runtime } from './runtime.js';
import { parseListen } from './util/units.js';
import { youngGenerationWarning } from './util/young-generation.js';
import { UpgradeTracker, isUpgrade } from './proxy/upgrade.js';
import { ProxyListener } from './proxy/listener.js';

export interface StartOptions {
  configPath: string;
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
  /** Collect the default process/nodejs metrics (off in tests that start many instances). */
  processMetrics?: boolean;
  /** Watch the file for changes (default true). */
  watch?: boolean;
}

export interface Outrigger {
  readonly proxy: AddressInfo;
  readonly admin: AddressInfo;
  /** The read-only probe listener; null when the config has no `status` section. */
  readonly status: AddressInfo | null;
  readonly metricsAddress: AddressInfo;
  readonly metrics: Metrics;
  readonly state: ProxyState;
  readonly log: Logger;
  /** Re-reads the config file; resolves with the problems found (empty when applied). */
  reload(): Promise<string[]>;
  /** The SIGTERM sequence: readiness off, serve for drain.delay, stop accepting, wait for in-flight work. */
  drain(): Promise<void>;
  /** Stops at once. */
  close(): Promise<void>;
}

function listen(server: Server, address: string): Promise<AddressInfo> {
  const { host, port } = parseListen(address) as { host: string; port: number };
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve(server.address() as AddressInfo);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

export async function start(opts: StartOptions): Promise<Outrigger> {
  const env = opts.env ?? process.env;
  const loaded: LoadedConfig = loadConfigFile(opts.configPath);
  const cfg = loaded.config;
  const log = opts.logger ?? createLogger(effectiveLevel(cfg.log.level, env));
  const metrics = new Metrics(opts.processMetrics ?? true);
  metrics.droppedLogLines = droppedLogLines;
  const state: ProxyState = {
    runtime: Runtime.build(loaded, metrics, log, null),
    draining: false,
    log,
    accessLog: accessLogWriter(log),
    inflight: 0,
    onIdle: null,
  };

  const ops = new Operations(metrics, () => state.runtime, () => state.draining);
  metrics.events.configure(cfg.events);
  metrics.events.logTo((level, fields, msg) => log[level](fields, msg));

  let watcher: ConfigWatcher | null = null;
  const reloadInBackground = (): void => {
    admin.reload().catch((err: unknown) => log.error({ err, event: 'config_reload_failed', severity: 'error' }, 'config reload failed unexpectedly; still serving the previous config'));
  };
  const watch = (pollInterval: number, hash: string) => new ConfigWatcher(opts.configPath, pollInterval, reloadInBackground, log, hash);
  let reloading: Promise<string[]> | null = null;
  const admin: AdminState = {
    proxy: state,
    ready: false,
    token: env.OUTRIGGER_ADMIN_TOKEN || undefined,
    lastReloadError: null,
    reload: () => (reloading ??= doReload().finally(() => (reloading = null))),
    ops,
    metrics,
    replayDeadLetter: (entry) => {
      const route = state.runtime.routes.find((r) => r.name === entry.route);
      return replayThroughListener(proxyAddr, entry, route?.config.timeout ?? 15_000, route?.config.retry.idempotencyHeader);
    },
  };

  async function doReload(): Promise<string[]> {
    const prev = state.runtime;
    let next: LoadedConfig;
    try {
      next = loadConfigFile(opts.configPath);
    } catch (err) {
      watcher?.acknowledge(err instanceof ConfigError ? (err.hash ?? null) : null);
      const problems = err instanceof ConfigError ? err.problems : [String(err)];
      admin.lastReloadError = { at: new Date().toISOString(), problems };
      metrics.reloads.labels('failure').inc();
      metrics.configLoaded(false);
      log.error({ path: opts.configPath, problems, event: 'config_reload_failed', severity: 'error' }, 'config reload rejected; still serving the previous config');
      ops.reloaded(problems);
      return problems;
    }
    watcher?.acknowledge(next.hash);
    if (next.hash === prev.loaded.hash) {
      // The file is back to what is being served (say, a bad edit reverted): nothing to
      // apply, but the last reload no longer failed.
      admin.lastReloadError = null;
      metrics.configLoaded(true);
      return [];
    }
    const changedListeners = (['listen', 'admin', 'status', 'metrics', 'http2'] as const).filter(
      (k) => JSON.stringify(next.config[k]) !== JSON.stringify(prev.config[k]),
    );
    // Everything but the listener addresses takes effect now: the log level (unless the
    // environment pins it) before the runtime is built, as that reads it; the poll interval
    // by restarting the watcher.
    if (!opts.logger) log.level = effectiveLevel(next.config.log.level, env);
    if (watcher !== null && next.config.reload.pollInterval !== prev.config.reload.pollInterval) {
      watcher.close();
      watcher = watch(next.config.reload.pollInterval, next.hash);
    }
    let rt: Runtime;
    try {
      rt = Runtime.build(next, metrics, log, prev);
    } catch (err) {
      // A valid config the machine cannot run (a dead-letter journal that cannot be opened,
      // say): refused like an invalid one, and the previous config keeps serving.
      const problems = [`the config is valid but cannot be applied: ${err instanceof Error ? err.message : String(err)}`];
      admin.lastReloadError = { at: new Date().toISOString(), problems };
      metrics.reloads.labels('failure').inc();
      metrics.configLoaded(false);
      log.error({ err, path: opts.configPath, problems, event: 'config_reload_failed', severity: 'error' }, 'config reload rejected; still serving the previous config');
      ops.reloaded(problems);
      return problems;
    }
    state.runtime = rt;
    metrics.events.configure(next.config.events);
    ops.start();
    admin.lastReloadError = null;
    metrics.reloads.labels('success').inc();
    metrics.configLoaded(true);
    log.info(
      { path: opts.configPath, hash: next.hash, routes: rt.routes.length, event: 'config_reload_succeeded', severity: 'info', ...(changedListeners.length ? { restartNeeded: changedListeners } : {}) },
      changedListeners.length ? 'config reloaded; listener address changes take effect on restart' : 'config reloaded',
    );
    if (next.warnings.length) log.warn({ path: opts.configPath, warnings: next.warnings, event: 'config_warnings' }, 'config warnings (the config is in force)');
    ops.reloaded([]);
    prev.retire(rt).catch((err: unknown) => log.error({ err }, 'closing the pools of removed upstreams failed'));
    return [];
  }

  const edge = cfg.http;
  // maxHeaderSize is Node's own limit on the header block (431 from clientError below).
  // maxHeadersCount 0: Node never drops header lines past its default 2,000; the handler
  // counts them against http.maxHeaders and refuses with 431, instead of forwarding a
  // request rebuilt from a truncated set.
  // shouldUpgradeCallback: an `Upgrade: h2c` offer is ignored and the request served as HTTP/1.1.
  const handler = createProxyHandler(state);
  const proxyServer = createServer({ keepAliveTimeout: 5000, maxHeaderSize: edge.maxHeaderBytes, shouldUpgradeCallback: isUpgrade }, handler);
  proxyServer.maxHeadersCount = 0;
  // The proxy port itself: HTTP/1.1 and h2c (prior knowledge) told apart by the preface.
  const listener = new ProxyListener(proxyServer, handler, { maxConcurrentStreams: cfg.http2.maxConcurrentStreams, maxHeaderListSize: edge.maxHeaderBytes });
  const ws = new UpgradeTracker(state);
  proxyServer.on('upgrade', ws.handleUpgrade);
  // Without a 'connect' listener Node closes a CONNECT's socket without a word.
  proxyServer.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const e = errorResponse(new ProxyError('OUTRIGGER_METHOD_NOT_ALLOWED', CONNECT_REFUSED), null, 0, randomUUID());
    socket.on('error', () => socket.destroy());
    socket.end(rawResponse(e.status, 'Method Not Allowed', [...e.headers, 'connection', 'close'], e.body));
  });
  const adminServer = createServer(createAdminHandler(admin));
  const metricsServer = createServer(createMetricsHandler(metrics));
  const statusServer = cfg.status ? createServer(createStatusHandler(admin)) : null;
  const closeStatus = () => (statusServer ? closeServer(statusServer) : Promise.resolve());
  // Client-side socket errors (resets, bad requests) are the client's business, not a crash.
  // A raw answer only goes on a socket with no response in flight (as Node's own default
  // handler does): written into a response being sent, it would corrupt its framing.
  proxyServer.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    const pending = (socket as Duplex & { _httpMessage?: unknown })._httpMessage;
    const inFlight = pending !== undefined && pending !== null;
    if (!socket.writable || inFlight || err.code === 'ECONNRESET') {
      socket.destroy();
      return;
    }
    if (err.code === 'HPE_HEADER_OVERFLOW') {
      const e = errorResponse(new ProxyError('OUTRIGGER_HEADERS_TOO_LARGE', `the request header block is larger than http.maxHeaderBytes (${edge.maxHeaderBytes})`), null, 0, randomUUID());
      socket.end(rawResponse(431, 'Request Header Fields Too Large', [...e.headers, 'connection', 'close'], e.body));
      return;
    }
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
  });

  let proxyAddr: AddressInfo;
  let adminAddr: AddressInfo;
  let metricsAddr: AddressInfo;
  let statusAddr: AddressInfo | null = null;
  try {
    proxyAddr = await listener.listen(cfg.listen);
    adminAddr = await listen(adminServer, cfg.admin.listen);
    metricsAddr = await listen(metricsServer, cfg.metrics.listen);
    if (statusServer && cfg.status) statusAddr = await listen(statusServer, cfg.status.listen);
  } catch (err) {
    await Promise.all([listener.close(), closeServer(adminServer), closeServer(metricsServer), closeStatus()]);
    throw err;
  }
  admin.ready = true;
  ops.start();

  if (opts.watch !== false) watcher = watch(cfg.reload.pollInterval, loaded.hash);

  log.info(
    {
      listen: `${proxyAddr.address}:${proxyAddr.port}`,
      admin: `${adminAddr.address}:${adminAddr.port}`,
      metrics: `${metricsAddr.address}:${metricsAddr.port}`,
      status: statusAddr ? `${statusAddr.address}:${statusAddr.port}` : undefined,
      routes: state.runtime.routes.length,
      config: opts.configPath,
      hash: loaded.hash,
    },
    'outrigger listening',
  );
  if (loaded.warnings.length) log.warn({ path: opts.configPath, warnings: loaded.warnings, event: 'config_warnings' }, 'config warnings (the config is in force)');
  const memoryLimitBytes = process.constrainedMemory();
  const heapWarning = youngGenerationWarning({ constrainedMemory: memoryLimitBytes, execArgv: process.execArgv, nodeOptions: process.env.NODE_OPTIONS });
  if (heapWarning) log.warn({ memoryLimitBytes, event: 'node_heap_warning' }, heapWarning);
  // The start-up line is what operators and scripts wait for: write it now, not with the next batch.
  log.flush();

  let closed = false;
  async function shutdown(): Promise<void> {
    if (closed) return;
    closed = true;
    ops.stop();
    watcher?.close();
    watcher = null;
    await ws.closeAll(1001, 'proxy shutting down', 200);
    listener.closeAllConnections();
    await Promise.all([listener.close(), closeServer(adminServer), closeServer(metricsServer), closeStatus()]);
    await Promise.all([...state.runtime.upstreams.values()].map((u) => u.value.destroy()));
    await state.runtime.closeJournals();
  }

  return {
    proxy: proxyAddr,
    admin: adminAddr,
    status: statusAddr,
    metricsAddress: metricsAddr,
    metrics,
    state,
    log,
    reload: admin.reload,
    async drain() {
      if (state.draining) return;
      state.draining = true;
      metrics.events.emit('drain_started', 'info', {}, 'draining: readiness is off; in-flight work is finishing', false);
      const { delay, timeout } = state.runtime.config.drain;
      log.info({ delayMs: delay, timeoutMs: timeout, inflight: state.inflight, websockets: ws.size, event: 'drain_started', severity: 'info' }, 'draining: readiness is off');
      await sleep(delay);
      watcher?.close();
      watcher = null;
      // Stop accepting; keep-alive sockets close as soon as they are idle.
      const proxyClosed = listener.close();
      const idleTimer = setInterval(() => listener.closeIdleConnections(), 250);
      await waitIdle(state, timeout);
      clearInterval(idleTimer);
      if (state.inflight > 0) log.warn({ inflight: state.inflight }, 'drain timeout: cutting in-flight requests');
      await ws.closeAll(1001, 'proxy draining');
      listener.closeAllConnections();
      await proxyClosed;
      await Promise.all([closeServer(adminServer), closeServer(metricsServer), closeStatus()]);
      await Promise.all([...state.runtime.upstreams.values()].map((u) => u.value.close()));
      await state.runtime.closeJournals();
      closed = true;
      ops.stop();
      log.info('drained');
    },
    close: shutdown,
  };
}

/** Headers a replay does not copy from the entry: hop-by-hop ones, the framing (the body is rebuilt), the old request id. */
const REPLAY_DROPPED = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade', 'trailer', 'content-length', 'expect', 'x-request-id']);

/**
 * Replays a dead letter as a new request to the proxy's own listener, so it takes the whole
 * path a client request takes (normalization, routing, the policy stack, metrics), with
 * `Idempotency-Key: <id>` when the original had none.
 */
function replayThroughListener(addr: AddressInfo, entry: DeadLetterEntry, routeTimeout: number, idempotencyHeader = 'idempotency-key'): Promise<ReplayResult> {
  const host = addr.address === '0.0.0.0' ? '127.0.0.1' : addr.address === '::' ? '::1' : addr.address;
  const body = Buffer.from(entry.body, 'base64');
  const headers: string[] = [];
  for (const [k, v] of entry.headers) if (!REPLAY_DROPPED.has(k.toLowerCase())) headers.push(k, v);
  if (entry.idempotencyKey === null) headers.push('idempotency-key', entry.id);
  // Also under the route's own idempotency header, if it names another: the retry rules then
  // see the replay as safe to repeat, so a replay that fails is never dead-lettered again.
  const own = idempotencyHeader.toLowerCase();
  if (own !== 'idempotency-key' && !entry.headers.some(([k]) => k.toLowerCase() === own)) headers.push(own, entry.idempotencyKey ?? entry.id);
  headers.push('content-length', String(body.length));
  return new Promise<ReplayResult>((resolve) => {
    const req = httpRequest({ host, port: addr.port, method: entry.method, path: entry.path, headers, agent: false, timeout: (routeTimeout || 60_000) + 5000 }, (res) => {
      res.resume();
      const error = res.headers['x-outrigger-error'];
      res.once('end', () => resolve({ status: res.statusCode ?? 0, error: typeof error === 'string' ? error : null }));
      res.once('error', (err) => resolve({ status: 0, error: err.message }));
    });
    req.once('timeout', () => req.destroy(new Error('the replay got no answer in time')));
    req.once('error', (err) => resolve({ status: 0, error: err.message }));
    req.end(body);
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}

function waitIdle(state: ProxyState, timeout: number): Promise<void> {
  if (state.inflight === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(done, timeout);
    function done() {
      clearTimeout(t);
      state.onIdle = null;
      resolve();
    }
    state.onIdle = done;
  });
}

/** A whole response written straight to a socket, for answers made outside a ServerResponse. */
function rawResponse(status: number, reason: string, headers: string[], body: Buffer): Buffer {
  let head = `HTTP/1.1 ${status} ${reason}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
  return Buffer.concat([Buffer.from(`${head}\r\n`, 'latin1'), body]);
}
