// Reads a config file, validates it against the schema, merges the built-in defaults,
// `defaults` and the presets a route uses into every route (presets.ts) and runs the
// cross-field checks. The result is plain data, frozen, and is what
// GET /config shows; compile.ts turns it into the runtime objects.
import { createHash } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
// js-yaml, not the yaml package: 305 KB of 1,000 routes parse in about 40 ms against 220
// to 320 ms (bench/config-scale-cost.js), which a reload under 200 ms needs. Its default
// schema is YAML 1.2 core, as before (`on`, `yes` stay strings; no merge keys, no dates).
import { loadAll, YAMLException } from 'js-yaml';
import type { z } from 'zod';
import { configSchema, defaultsSchema, policyLayerSchema, type Defaults, type FallbackConfig, type PresetConfig, type RawConfig, type RawRoute, type UpstreamConfig } from './schema.js';
import { assemble, leaves, Presets, settingAt, TRIP_SLOT, type Layer, type PolicySource, type Setting } from './presets.js';
import { parseListen } from '../util/units.js';

export const DEFAULT_CONFIG_PATH = 'config/outrigger.yaml';
/** Alias nodes (`*name`) a config file may use. */
const MAX_YAML_ALIASES = 100;
export const DEFAULT_CONSECUTIVE_FAILURES = 5;

export interface EffectiveBreaker {
  enabled: boolean;
  name: string;
  consecutiveFailures?: number;
  failureRate?: { threshold: number; window: number; minRequests: number };
  halfOpenAfter: number | { base: number; max: number };
  failOn: Defaults['breaker']['failOn'];
  /** ms; a half-open probe gets min(probeTimeout, time left). */
  probeTimeout: number;
}

export interface EffectiveFallback extends FallbackConfig {
  /** The response body: `body`, or the contents of `bodyFile` read at load time. */
  body: string;
  /**
   * Whether the static response (status, headers, body) is sent on a trigger: always
   * without `staleIfError`; with it, only when `body` or `bodyFile` is set, so a cache
   * miss passes the error through instead of an empty 200.
   */
  staticResponse: boolean;
}

export interface EffectiveRoute {
  name: string;
  match: RawRoute['match'];
  upstream: string;
  rewritePrefix?: string;
  preserveHost: boolean;
  /** The route carries gRPC (checked against its upstream's protocol at load). */
  grpc: boolean;
  critical: boolean;
  timeout: number;
  bodyTimeout: number;
  requestTimeout: number;
  retry: Defaults['retry'];
  breaker: EffectiveBreaker;
  concurrency: Defaults['concurrency'];
  fallback?: EffectiveFallback;
  websocket: Defaults['websocket'];
  upgrades: string[];
  health: Defaults['health'];
  /** The dead-letter journal's settings; `dir` is absolute (resolved against the config file). */
  deadLetter: Defaults['deadLetter'];
  /** The presets the route lists, as written. */
  use: string[];
  /** Where each policy value came from, by key path ("retry.backoff.base"): builtin, defaults, preset:<name> or route. */
  sources: Record<string, PolicySource>;
}

export interface EffectiveConfig {
  listen: string;
  admin: RawConfig['admin'];
  status: RawConfig['status'];
  metrics: RawConfig['metrics'];
  log: RawConfig['log'];
  drain: RawConfig['drain'];
  reload: RawConfig['reload'];
  events: RawConfig['events'];
  flapping: RawConfig['flapping'];
  http: RawConfig['http'];
  http2: RawConfig['http2'];
  upstreams: Record<string, UpstreamConfig>;
  defaults: Defaults;
  /** Every preset in force, built-ins first, as parsed. */
  presets: Record<string, PresetConfig>;
  routes: EffectiveRoute[];
}

export interface LoadedConfig {
  path: string;
  hash: string;
  loadedAt: Date;
  config: EffectiveConfig;
  /** Valid but doubtful input (conflicting presets, a preset listed again): `check` prints them, the proxy logs them. */
  warnings: string[];
}

/** A config that failed validation; `problems` holds every problem found, one line each. */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
    /** Hash of the rejected text, when it could be read. */
    readonly hash?: string,
  ) {
    super(`${file}: ${problems.length} problem${problems.length === 1 ? '' : 's'}\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** `--config FILE`, then `OUTRIGGER_CONFIG`, then config/outrigger.yaml. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return resolve(flag ?? (env.OUTRIGGER_CONFIG || DEFAULT_CONFIG_PATH));
}

export function loadConfigFile(path: string): LoadedConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read the file: ${(err as Error).message}`]);
  }
  return loadConfigText(text, path);
}

/** One YAML document; a file of comments only is null (refused as empty below). */
function parseYaml(text: string): unknown {
  const docs = loadAll(text, { maxAliases: MAX_YAML_ALIASES });
  if (docs.length > 1) throw new YAMLException(`expected one YAML document, found ${docs.length} (separated by ---)`);
  return docs[0] ?? null;
}

export function loadConfigText(text: string, path: string): LoadedConfig {
  const hash = createHash('sha256').update(text).digest('hex');
  // An empty file is far more often a truncate-then-write caught half way, or a blank
  // ConfigMap, than a wish for no routes: refuse it (`routes: []` says that explicitly).
  if (text.trim() === '') throw new ConfigError(path, ['the config file is empty'], hash);
  let doc: unknown;
  try {
    // Aliases bounded as the yaml package did (100): each is a reference, and validation
    // walks every one, so a chain of them would make a small file take forever.
    doc = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    if (err instanceof YAMLException) {
      const m = err.mark;
      const where = m !== undefined && m.line >= 0 ? ` at line ${m.line + 1}, column ${m.column + 1}` : '';
      throw new ConfigError(path, [`YAML syntax error${where}: ${err.reason}`], hash);
    }
    throw new ConfigError(path, [`syntax error: ${(err as Error).message}`], hash);
  }
  if (doc === null || doc === undefined) throw new ConfigError(path, ['the config file is empty (it holds only comments)'], hash);
  if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError(path, [`the top level must be a mapping, got ${Array.isArray(doc) ? 'a list' : `a ${typeof doc}`}`], hash);
  const parsed = configSchema.safeParse(doc, { reportInput: true });
  if (!parsed.success) throw new ConfigError(path, parsed.error.issues.map(formatIssue), hash);
  const problems: string[] = [];
  const warnings: string[] = [];
  const config = buildEffective(parsed.data, (doc as { defaults?: unknown }).defaults, dirname(path), problems, warnings);
  if (problems.length > 0) throw new ConfigError(path, problems, hash);
  return { path, hash, loadedAt: new Date(), config: deepFreeze(config), warnings };
}

// ---------------------------------------------------------------------------------------

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? String(seg) : `.${String(seg)}`;
  }
  return out === '' ? '(top level)' : out;
}

const got = (v: unknown): string => {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return JSON.stringify(v);
  return `${typeof v} ${String(v)}`;
};

function formatIssue(issue: z.core.$ZodIssue): string {
  const where = formatPath(issue.path);
  const input = (issue as { input?: unknown }).input;
  switch (issue.code) {
    case 'unrecognized_keys':
      return issue.keys.map((k) => `${formatPath([...issue.path, k])}: unknown key`).join('\n  ');
    case 'invalid_type':
      if (input === undefined) return `${where}: required, expected ${issue.expected}`;
      return `${where}: expected ${issue.expected}, got ${got(input)}`;
    case 'invalid_value':
      return `${where}: expected one of ${issue.values.map((v) => JSON.stringify(v)).join(' | ')}, got ${got(input)}`;
    case 'too_small':
      if (issue.origin === 'array') return `${where}: expected at least ${String(issue.minimum)} item(s)`;
      if (issue.origin === 'string') return `${where}: expected at least ${String(issue.minimum)} character(s)`;
      return `${where}: expected a number ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}, got ${got(input)}`;
    case 'too_big':
      if (issue.origin === 'array') return `${where}: expected at most ${String(issue.maximum)} item(s)`;
      if (issue.origin === 'string') return `${where}: expected at most ${String(issue.maximum)} character(s)`;
      return `${where}: expected a number ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}, got ${got(input)}`;
    case 'invalid_key': {
      // A map key (an upstream or preset name) that is not a name: say what a name is, unless
      // the map has a message of its own (header names).
      const sub = issue.issues[0];
      return `${where}: ${sub && issue.message === 'Invalid key in record' ? sub.message : issue.message}`;
    }
    case 'invalid_format':
      if (issue.format === 'starts_with') return `${where}: expected a path starting with "/", got ${got(input)}`;
      return `${where}: ${issue.message}`;
    default:
      return `${where}: ${issue.message}`;
  }
}

// ---------------------------------------------------------------------------------------

/** One layer (defaults, a preset, a route) may set one trip condition; a later layer's replaces it. */
function checkTrip(b: { consecutiveFailures?: number | undefined; failureRate?: EffectiveBreaker['failureRate'] | undefined }, at: string, problems: string[]): void {
  if (b.consecutiveFailures !== undefined && b.failureRate !== undefined) problems.push(`${at}: set consecutiveFailures or failureRate, not both`);
}

/** The built-in defaults as the first layer of every route: the schema's defaults, and the default trip condition. */
const BUILTIN_DEFAULTS: Defaults & { critical: boolean } = (() => {
  const d = defaultsSchema.parse({});
  return { ...d, breaker: { ...d.breaker, consecutiveFailures: DEFAULT_CONSECUTIVE_FAILURES }, critical: false };
})();
const BUILTIN_LAYER: Layer = { source: 'builtin', at: '', values: BUILTIN_DEFAULTS };

/** The keys of a route that are policy (merged from defaults and presets), `critical` included. */
const POLICY_KEYS: ReadonlySet<string> = new Set([...Object.keys(policyLayerSchema.shape), 'critical']);

function policyPart(o: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([k]) => POLICY_KEYS.has(k)));
}

function buildEffective(raw: RawConfig, rawDefaults: unknown, baseDir: string, problems: string[], warnings: string[]): EffectiveConfig {
  checkListeners(raw, problems);
  if (raw.flapping.low > raw.flapping.high) problems.push(`flapping.low: ${raw.flapping.low} is above flapping.high (${raw.flapping.high})`);
  for (const [name, up] of Object.entries(raw.upstreams)) {
    up.endpoints.forEach((ep, i) => {
      const problem = endpointProblem(ep);
      if (problem) problems.push(`upstreams.${name}.endpoints[${i}]: ${problem}`);
      else if (up.protocol === 'h2' && !ep.startsWith('https:')) problems.push(`upstreams.${name}.endpoints[${i}]: protocol h2 is HTTP/2 over TLS and needs an https:// endpoint, got ${JSON.stringify(ep)} (use protocol h2c for cleartext)`);
      else if (up.protocol === 'h2c' && !ep.startsWith('http:')) problems.push(`upstreams.${name}.endpoints[${i}]: protocol h2c is cleartext HTTP/2 and needs an http:// endpoint, got ${JSON.stringify(ep)} (use protocol h2 for TLS)`);
    });
  }

  const d = raw.defaults;
  checkTrip(d.breaker, 'defaults.breaker', problems);
  checkPolicies('defaults', d.timeout, d.retry, d.breaker.halfOpenAfter, problems);
  const defaultFallback = d.fallback ? resolveFallback(d.fallback, 'defaults.fallback', baseDir, problems) : undefined;
  // `defaults` parsed without its defaults, to tell what the file sets from what is built in.
  // It cannot fail where the full parse passed: the same keys, every one optional.
  const ownDefaults = policyLayerSchema.safeParse(rawDefaults ?? {});
  const defaultsLayer: Layer = {
    source: 'defaults',
    at: 'defaults',
    values: { ...(ownDefaults.success ? ownDefaults.data : {}), ...(defaultFallback ? { fallback: defaultFallback } : {}) },
  };

  const presets = new Presets(
    raw.presets,
    (p, at) => {
      if (p.breaker) checkTrip(p.breaker, `${at}.breaker`, problems);
      const { use: _use, ...values } = p;
      return p.fallback ? { ...values, fallback: resolveFallback(p.fallback, `${at}.fallback`, baseDir, problems) } : values;
    },
    problems,
    warnings,
  );

  const seen = new Map<string, number>();
  const breakers = new Map<string, { at: string; fingerprint: string }>();
  const routes: EffectiveRoute[] = raw.routes.map((r, i) => {
    const at = `routes[${i}]`;
    const prev = seen.get(r.name);
    if (prev !== undefined) problems.push(`${at}.name: duplicate route name "${r.name}" (also routes[${prev}])`);
    else seen.set(r.name, i);
    if (!(r.upstream in raw.upstreams)) {
      const known = Object.keys(raw.upstreams);
      problems.push(`${at}.upstream: unknown upstream "${r.upstream}" (${known.length ? `known: ${known.join(', ')}` : 'no upstreams are defined'})`);
    }
    checkMatch(r, at, problems);
    if (r.grpc && raw.upstreams[r.upstream]?.protocol === 'http1') {
      problems.push(`${at}.grpc: gRPC needs HTTP/2 to the upstream, but upstream "${r.upstream}" has protocol http1; set upstreams.${r.upstream}.protocol to h2c or h2`);
    }
    if (r.breaker) checkTrip(r.breaker, `${at}.breaker`, problems);

    const own = policyPart(r);
    if (r.fallback) own.fallback = resolveFallback(r.fallback, `${at}.fallback`, baseDir, problems);
    const { layers, via } = presets.layersFor(r.use, at, [BUILTIN_LAYER, defaultsLayer], { source: 'route', at, values: own }, problems, warnings);
    const s = presets.merge(layers, via, r.use, at, warnings);
    const value = <T>(path: string): T => settingAt(s, path)?.value as T;

    const fallback = value<EffectiveFallback | undefined>('fallback');
    const trip = s.get(TRIP_SLOT) as Setting;
    const breaker: EffectiveBreaker = {
      enabled: value('breaker.enabled'),
      name: value<string | undefined>('breaker.name') ?? r.name,
      ...(trip.path === 'breaker.failureRate' ? { failureRate: trip.value as NonNullable<EffectiveBreaker['failureRate']> } : { consecutiveFailures: trip.value as number }),
      halfOpenAfter: value('breaker.halfOpenAfter'),
      failOn: value('breaker.failOn'),
      probeTimeout: value('breaker.probeTimeout'),
    };
    const route: EffectiveRoute = {
      name: r.name,
      match: r.match,
      upstream: r.upstream,
      ...(r.rewritePrefix !== undefined ? { rewritePrefix: r.rewritePrefix } : {}),
      preserveHost: r.preserveHost,
      grpc: r.grpc,
      critical: value('critical'),
      timeout: value('timeout'),
      bodyTimeout: value('bodyTimeout'),
      requestTimeout: value('requestTimeout'),
      retry: assemble(BUILTIN_DEFAULTS.retry, 'retry', s) as Defaults['retry'],
      breaker,
      concurrency: assemble(BUILTIN_DEFAULTS.concurrency, 'concurrency', s) as Defaults['concurrency'],
      websocket: assemble(BUILTIN_DEFAULTS.websocket, 'websocket', s) as Defaults['websocket'],
      upgrades: value('upgrades'),
      health: assemble(BUILTIN_DEFAULTS.health, 'health', s) as Defaults['health'],
      deadLetter: assemble(BUILTIN_DEFAULTS.deadLetter, 'deadLetter', s) as Defaults['deadLetter'],
      ...(fallback ? { fallback } : {}),
      use: r.use,
      sources: {},
    };
    for (const [path] of leaves(policyPart(route))) route.sources[path] = settingAt(s, path)?.source ?? 'builtin';
    // A value that came from a preset is named in the message, since the route does not show it.
    const from = (path: string): string => {
      const st = settingAt(s, path);
      return st?.preset !== undefined ? ` (from presets.${st.preset}.${st.path})` : '';
    };
    checkPolicies(at, route.timeout, route.retry, route.breaker.halfOpenAfter, problems, from);
    route.deadLetter.dir = resolve(baseDir, route.deadLetter.dir);
    if (route.deadLetter.enabled) checkDeadLetter(at, route.name, route.deadLetter, problems, from);
    if (route.health.errorRatio.warning > route.health.errorRatio.critical) {
      problems.push(
        `${at}.health.errorRatio: warning (${route.health.errorRatio.warning})${from('health.errorRatio.warning')} is above critical (${route.health.errorRatio.critical})${from('health.errorRatio.critical')}`,
      );
    }

    if (breaker.enabled) {
      const { name: _n, ...settings } = breaker;
      const fingerprint = JSON.stringify(settings);
      const shared = breakers.get(breaker.name);
      if (shared && shared.fingerprint !== fingerprint) {
        problems.push(`${at}.breaker: shares breaker "${breaker.name}" with ${shared.at} but with different settings; shared breakers need identical settings`);
      } else if (!shared) breakers.set(breaker.name, { at, fingerprint });
    }
    return route;
  });

  return {
    listen: raw.listen,
    admin: raw.admin,
    status: raw.status,
    metrics: raw.metrics,
    log: raw.log,
    drain: raw.drain,
    reload: raw.reload,
    events: raw.events,
    flapping: raw.flapping,
    http: raw.http,
    http2: raw.http2,
    upstreams: raw.upstreams,
    defaults: d,
    presets: presets.table(),
    routes,
  };
}

function checkPolicies(at: string, timeout: number, retry: Defaults['retry'], halfOpen: EffectiveBreaker['halfOpenAfter'], problems: string[], from: (path: string) => string = () => ''): void {
  if (timeout > 0 && retry.perTryTimeout > timeout) {
    problems.push(`${at}.retry.perTryTimeout: ${retry.perTryTimeout}ms${from('retry.perTryTimeout')} is longer than the route timeout of ${timeout}ms${from('timeout')}`);
  }
  if (retry.backoff.base > retry.backoff.max) {
    problems.push(`${at}.retry.backoff: base (${retry.backoff.base}ms)${from('retry.backoff.base')} is greater than max (${retry.backoff.max}ms)${from('retry.backoff.max')}`);
  }
  if (retry.on.includes('retriable-status') && retry.statuses.length === 0) {
    problems.push(`${at}.retry.on: retriable-status is listed${from('retry.on')} but retry.statuses is empty`);
  }
  if (typeof halfOpen === 'object' && halfOpen.base > halfOpen.max) {
    problems.push(`${at}.breaker.halfOpenAfter: base (${halfOpen.base}ms) is greater than max (${halfOpen.max}ms)${from('breaker.halfOpenAfter')}`);
  }
}

/**
 * The journal's directory must exist and be writable now, so a bad mount fails `check` and
 * the reload rather than the first dead letter. Nothing is created here: not the directory,
 * not the journal (the runtime opens that when it starts).
 */
/** Where a route's dead-letter journal lives (deadletter/journal.ts opens it; check looks at it). */
export function deadLetterJournalPath(dir: string, route: string): string {
  return join(dir, `${route}.deadletters.ndjson`);
}

function checkDeadLetter(at: string, routeName: string, dl: Defaults['deadLetter'], problems: string[], from: (path: string) => string): void {
  try {
    if (!statSync(dl.dir).isDirectory()) {
      problems.push(`${at}.deadLetter.dir: ${JSON.stringify(dl.dir)}${from('deadLetter.dir')} is not a directory`);
      return;
    }
    accessSync(dl.dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch (err) {
    problems.push(`${at}.deadLetter.dir: ${JSON.stringify(dl.dir)}${from('deadLetter.dir')} is not a writable directory: ${(err as Error).message}`);
    return;
  }
  // An existing journal must be one the proxy can open: a regular file it may read and write.
  const file = deadLetterJournalPath(dl.dir, routeName);
  try {
    const st = statSync(file);
    if (!st.isFile()) problems.push(`${at}.deadLetter.dir: the journal ${JSON.stringify(file)} exists but is not a regular file`);
    else accessSync(file, fsConstants.R_OK | fsConstants.W_OK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') problems.push(`${at}.deadLetter.dir: the journal ${JSON.stringify(file)} cannot be opened for reading and writing: ${(err as Error).message}`);
  }
  if (dl.maxBodyBytes > dl.maxBytes) problems.push(`${at}.deadLetter.maxBodyBytes: ${dl.maxBodyBytes} is above maxBytes (${dl.maxBytes})`);
}

function checkMatch(r: RawRoute, at: string, problems: string[]): void {
  const m = r.match;
  const kinds = [m.pathPrefix, m.path, m.pathRegex].filter((x) => x !== undefined).length;
  if (kinds > 1) problems.push(`${at}.match: set at most one of pathPrefix, path, pathRegex`);
  if (m.pathRegex !== undefined) {
    const err = regexProblem(m.pathRegex);
    if (err) problems.push(`${at}.match.pathRegex: ${err}`);
  }
  for (const [h, v] of Object.entries(m.headers ?? {})) {
    if (typeof v === 'object' && 'regex' in v) {
      const err = regexProblem(v.regex);
      if (err) problems.push(`${at}.match.headers.${h}.regex: ${err}`);
    }
  }
  if (r.rewritePrefix !== undefined && m.pathPrefix === undefined && m.path === undefined) {
    problems.push(`${at}.rewritePrefix: needs match.pathPrefix or match.path to know what to replace`);
  }
}

function regexProblem(src: string): string | undefined {
  try {
    new RegExp(src);
    return undefined;
  } catch (err) {
    return `invalid regular expression: ${(err as Error).message}`;
  }
}

function endpointProblem(ep: string): string | undefined {
  let url: URL;
  try {
    url = new URL(ep);
  } catch {
    return `expected an http URL like "http://10.0.0.1:8080", got ${JSON.stringify(ep)}`;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return `expected an http:// or https:// URL, got ${JSON.stringify(ep)}`;
  if ((url.pathname !== '/' && url.pathname !== '') || url.search || url.hash) return `an endpoint is an origin only (scheme, host, port), got ${JSON.stringify(ep)}`;
  if (url.username || url.password) return `credentials in endpoint URLs are not supported, got ${JSON.stringify(ep)}`;
  return undefined;
}

function checkListeners(raw: RawConfig, problems: string[]): void {
  const entries: Array<[string, string]> = [
    ['listen', raw.listen],
    ['admin.listen', raw.admin.listen],
    ['metrics.listen', raw.metrics.listen],
  ];
  if (raw.status) entries.push(['status.listen', raw.status.listen]);
  const parsed = entries.map(([k, v]) => [k, v, parseListen(v)] as const);
  for (let i = 0; i < parsed.length; i++) {
    for (let j = 0; j < i; j++) {
      const [ki, vi, a] = parsed[i] as (typeof parsed)[number];
      const [kj, vj, b] = parsed[j] as (typeof parsed)[number];
      if (!a || !b || a.port === 0 || a.port !== b.port) continue;
      const wildcard = (h: string) => h === '0.0.0.0' || h === '::';
      if (a.host === b.host || wildcard(a.host) || wildcard(b.host)) {
        problems.push(`${ki}: ${vi} collides with ${kj} (${vj}); each listener needs its own port`);
      }
    }
  }
}

function resolveFallback(f: FallbackConfig, at: string, baseDir: string, problems: string[]): EffectiveFallback {
  const staticResponse = f.staleIfError === undefined || f.body !== undefined || f.bodyFile !== undefined;
  if (f.body !== undefined && f.bodyFile !== undefined) {
    problems.push(`${at}: set body or bodyFile, not both`);
    return { ...f, body: f.body, staticResponse };
  }
  if (f.bodyFile !== undefined) {
    try {
      return { ...f, body: readFileSync(resolve(baseDir, f.bodyFile), 'utf8'), staticResponse };
    } catch (err) {
      problems.push(`${at}.bodyFile: cannot read ${JSON.stringify(f.bodyFile)}: ${(err as Error).message}`);
      return { ...f, body: '', staticResponse };
    }
  }
  return { ...f, body: f.body ?? '', staticResponse };
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
