import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, loadConfigText, resolveConfigPath, type LoadedConfig } from '../../src/config/load.js';

const UP = `upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }\n`;

/** The problem list for a config that must be invalid. */
function problemsOf(yaml: string, path = '/tmp/outrigger-test.yaml'): string[] {
  try {
    loadConfigText(yaml, path);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

function load(yaml: string, path = '/tmp/outrigger-test.yaml'): LoadedConfig {
  return loadConfigText(yaml, path);
}

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('a corpus of bad configs', () => {
  // Each case: the config, and the exact problem lines it must produce (in any order).
  const corpus: Array<[string, string, string[]]> = [
    [
      'a bad duration, with the path of the key',
      `${UP}routes:\n  - { name: r0, upstream: a }\n  - { name: r1, upstream: a, retry: { backoff: { base: fast } } }\n`,
      ['routes[1].retry.backoff.base: expected a duration like "250ms", got "fast"'],
    ],
    [
      'unknown keys at every level',
      `bogus: 1\nupstreams: { a: { endpoints: ["http://127.0.0.1:1"], extra: 2 } }\nroutes:\n  - { name: r0, upstream: a, retyr: {}, match: { hots: x } }\ndefaults: { retry: { jitter: full } }\n`,
      ['bogus: unknown key', 'upstreams.a.extra: unknown key', 'routes[0].retyr: unknown key', 'routes[0].match.hots: unknown key', 'defaults.retry.jitter: unknown key'],
    ],
    [
      'an upstream name that is not a name',
      `upstreams: { "bad name": { endpoints: ["http://127.0.0.1:1"] } }\n`,
      ['upstreams.bad name: expected a name of letters, digits, "_", "." or "-" (at most 63 characters), got "bad name"'],
    ],
    [
      'an unknown upstream',
      `${UP}routes: [{ name: r0, upstream: nope }]\n`,
      ['routes[0].upstream: unknown upstream "nope" (known: a)'],
    ],
    [
      'an unknown upstream with none defined',
      `routes: [{ name: r0, upstream: nope }]\n`,
      ['routes[0].upstream: unknown upstream "nope" (no upstreams are defined)'],
    ],
    [
      'duplicate route names',
      `${UP}routes: [{ name: r0, upstream: a }, { name: r1, upstream: a }, { name: r0, upstream: a }]\n`,
      ['routes[2].name: duplicate route name "r0" (also routes[0])'],
    ],
    [
      'perTryTimeout longer than timeout',
      `${UP}routes: [{ name: r0, upstream: a, timeout: 1s, retry: { perTryTimeout: 2s } }]\n`,
      ['routes[0].retry.perTryTimeout: 2000ms is longer than the route timeout of 1000ms'],
    ],
    [
      'consecutiveFailures and failureRate together',
      `${UP}routes: [{ name: r0, upstream: a, breaker: { consecutiveFailures: 3, failureRate: { threshold: 0.5 } } }]\n`,
      ['routes[0].breaker: set consecutiveFailures or failureRate, not both'],
    ],
    [
      'consecutiveFailures and failureRate together in defaults',
      `${UP}defaults: { breaker: { consecutiveFailures: 3, failureRate: { threshold: 0.5 } } }\n`,
      ['defaults.breaker: set consecutiveFailures or failureRate, not both'],
    ],
    [
      'bad endpoint URLs',
      `upstreams: { a: { endpoints: ["ftp://x", "not a url", "http://h:1/path", "http://u:p@h:1"] } }\n`,
      [
        'upstreams.a.endpoints[0]: expected an http:// or https:// URL, got "ftp://x"',
        'upstreams.a.endpoints[1]: expected an http URL like "http://10.0.0.1:8080", got "not a url"',
        'upstreams.a.endpoints[2]: an endpoint is an origin only (scheme, host, port), got "http://h:1/path"',
        'upstreams.a.endpoints[3]: credentials in endpoint URLs are not supported, got "http://u:p@h:1"',
      ],
    ],
    [
      'no endpoints',
      `upstreams: { a: { endpoints: [] } }\n`,
      ['upstreams.a.endpoints: expected at least 1 item(s)'],
    ],
    [
      'listener collisions, wildcard included',
      `listen: 127.0.0.1:9000\nadmin: { listen: "0.0.0.0:9000" }\nmetrics: { listen: "127.0.0.1:9001" }\n`,
      ['admin.listen: 0.0.0.0:9000 collides with listen (127.0.0.1:9000); each listener needs its own port'],
    ],
    [
      'a fallback header value with a line break, a bad header name, a duration over 24h, a zero keep-alive',
      `upstreams: { a: { endpoints: ["http://127.0.0.1:1"], keepAliveTimeout: 0 } }\nroutes: [{ name: r0, upstream: a, timeout: 25h, fallback: { headers: { x-a: "one\\r\\nset-cookie: evil", "bad name": v } } }]\n`,
      [
        'upstreams.a.keepAliveTimeout: expected a keep-alive timeout of at least 1ms',
        'routes[0].timeout: expected a duration of at most 24h (longer ones overflow timers), got "25h"',
        'routes[0].fallback.headers.x-a: expected a header value of visible characters, spaces and tabs (no CR, LF, NUL or other control characters)',
        'routes[0].fallback.headers.bad name: expected a header name (RFC 9110 token)',
      ],
    ],
    [
      'a status listener on another listener\'s port',
      `listen: 127.0.0.1:9000\nadmin: { listen: "127.0.0.1:9002" }\nmetrics: { listen: "127.0.0.1:9001" }\nstatus: { listen: "0.0.0.0:9001" }\n`,
      ['status.listen: 0.0.0.0:9001 collides with metrics.listen (127.0.0.1:9001); each listener needs its own port'],
    ],
    [
      'a status section without an address',
      `status: {}\n`,
      ['status.listen: required, expected string'],
    ],
    [
      'a bad listen address',
      `metrics: { listen: nope }\n`,
      ['metrics.listen: expected a listen address like "0.0.0.0:15001", got "nope"'],
    ],
    [
      'enum and range errors',
      `${UP}routes:\n  - { name: r0, upstream: a, retry: { attempts: -1, on: [sometimes], backoff: { jitter: lots } }, breaker: { failOn: [bad] }, concurrency: { max: 0 }, fallback: { on: [x], status: 99 } }\n`,
      [
        'routes[0].retry.attempts: expected a number >= 0, got number -1',
        'routes[0].retry.on[0]: expected one of "connect-failure" | "refused-stream" | "reset" | "gateway-error" | "5xx" | "retriable-status" | "cancelled" | "deadline-exceeded" | "resource-exhausted" | "internal" | "unavailable", got "sometimes"',
        'routes[0].retry.backoff.jitter: expected one of "full" | "equal" | "decorrelated" | "none", got "lots"',
        'routes[0].breaker.failOn[0]: expected one of connect-failure | reset | timeout | gateway-error | 5xx | cancelled | deadline-exceeded | resource-exhausted | internal | unavailable or a status code, got "bad"',
        'routes[0].concurrency.max: expected a number >= 1, got number 0',
        'routes[0].fallback.on[0]: expected one of "breaker-open" | "timeout" | "upstream-unavailable" | "5xx" | "overloaded", got "x"',
        'routes[0].fallback.status: expected a number >= 200, got number 99',
      ],
    ],
    [
      'bad names, sizes, paths and methods',
      `${UP}routes:\n  - { name: "bad name!", upstream: a, match: { pathPrefix: nope, methods: [get] }, retry: { bufferBody: huge }, timeout: [1] }\n`,
      [
        'routes[0].name: expected a name of letters, digits, "_", "." or "-" (at most 63 characters), got "bad name!"',
        'routes[0].match.pathPrefix: expected a path starting with "/", got "nope"',
        'routes[0].match.methods[0]: expected an upper-case HTTP method like "GET", got "get"',
        'routes[0].retry.bufferBody: expected a size like "64KiB", got "huge"',
        'routes[0].timeout: expected a duration like "250ms", got a list',
      ],
    ],
    [
      'cross-field checks of policies and matches',
      `${UP}routes:\n  - { name: r0, upstream: a, match: { path: /a, pathPrefix: /b } }\n  - { name: r1, upstream: a, retry: { on: [retriable-status], backoff: { base: 2s, max: 1s } }, breaker: { halfOpenAfter: { base: 2s, max: 1s } } }\n  - { name: r2, upstream: a, match: { headers: { x: { regex: "[" } } } }\n  - { name: r3, upstream: a, rewritePrefix: /x }\n`,
      [
        'routes[0].match: set at most one of pathPrefix, path, pathRegex',
        'routes[1].retry.backoff: base (2000ms) is greater than max (1000ms)',
        'routes[1].retry.on: retriable-status is listed but retry.statuses is empty',
        'routes[1].breaker.halfOpenAfter: base (2000ms) is greater than max (1000ms)',
        'routes[2].match.headers.x.regex: invalid regular expression: Invalid regular expression: /[/: Unterminated character class',
        'routes[3].rewritePrefix: needs match.pathPrefix or match.path to know what to replace',
      ],
    ],
    [
      'a shared breaker with different settings',
      `${UP}routes:\n  - { name: r0, upstream: a, breaker: { name: shared, consecutiveFailures: 2 } }\n  - { name: r1, upstream: a, breaker: { name: shared, consecutiveFailures: 3 } }\n`,
      ['routes[1].breaker: shares breaker "shared" with routes[0] but with different settings; shared breakers need identical settings'],
    ],
    [
      'body and bodyFile together',
      `${UP}routes: [{ name: r0, upstream: a, fallback: { body: x, bodyFile: y } }]\n`,
      ['routes[0].fallback: set body or bodyFile, not both'],
    ],
    ['a wrong top-level type', `routes: 5\n`, ['routes: expected array, got number 5']],
    ['a budget window under 1s', `defaults: { retry: { budget: { window: 500ms } } }\n`, ['defaults.retry.budget.window: expected a window of at least 1s']],
  ];

  it.each(corpus)('%s', (_name, yaml, expected) => {
    expect(problemsOf(yaml).sort()).toEqual([...expected].sort());
  });

  it('reports every schema problem at once', () => {
    const problems = problemsOf(`${UP}routes:\n  - { name: r0, upstream: a, timeout: soon, bodyTimeout: later, retry: { attempts: 99 } }\n`);
    expect(problems).toHaveLength(3);
    expect(problems).toContain('routes[0].timeout: expected a duration like "250ms", got "soon"');
    expect(problems).toContain('routes[0].bodyTimeout: expected a duration like "250ms", got "later"');
    expect(problems).toContain('routes[0].retry.attempts: expected a number <= 10, got number 99');
  });

  it('reports a YAML syntax error with its line', () => {
    const [p, ...rest] = problemsOf('routes: [ {name: x');
    expect(rest).toEqual([]);
    expect(p).toMatch(/^YAML syntax error at line 1, column \d+/);
  });

  it('YAML is 1.2 core: on/yes stay strings, no dates or merge keys; duplicate keys, several documents and over 100 aliases are refused', () => {
    const [dup] = problemsOf('routes: []\nroutes: []\n');
    expect(dup).toMatch(/^YAML syntax error at line 2, column 1: duplicated mapping key/);
    const [multi] = problemsOf('routes: []\n---\nroutes: []\n');
    expect(multi).toBe('YAML syntax error: expected one YAML document, found 2 (separated by ---)');
    const many = `x-anchor: &a [1]\nx-uses: [${Array(101).fill('*a').join(', ')}]\nroutes: []\n`;
    const [aliases] = problemsOf(many);
    expect(aliases).toMatch(/^YAML syntax error at line 2, .*maxAliases \(100\)/);
    // 100 are fine (the keys are then unknown to the schema, which says so).
    const fine = problemsOf(`x-anchor: &a [1]\nx-uses: [${Array(100).fill('*a').join(', ')}]\nroutes: []\n`);
    expect(fine.join('\n')).not.toMatch(/YAML syntax error/);
    const c = loadConfigText('upstreams: { on: { endpoints: ["http://127.0.0.1:1"] } }\nroutes:\n  - { name: yes, match: { pathPrefix: / }, upstream: on }\n  - { name: 2001-12-14, match: { pathPrefix: /d }, upstream: on }\n', '/tmp/y.yaml').config;
    expect(c.routes.map((r) => r.name)).toEqual(['yes', '2001-12-14']);
    expect(problemsOf('routes: []\nx: &b { a: 1 }\ndefaults: { <<: *b }\n').join('\n')).toMatch(/<</);
  });

  it('puts every problem, one per line, in the error message', () => {
    try {
      loadConfigText(`${UP}routes: [{ name: r0, upstream: b }, { name: r0, upstream: a }]\n`, '/x/c.yaml');
      throw new Error('not rejected');
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      const msg = (err as ConfigError).message;
      expect(msg.split('\n')[0]).toBe('/x/c.yaml: 2 problems');
      expect(msg).toContain('\n  routes[0].upstream: unknown upstream "b" (known: a)');
      expect(msg).toContain('\n  routes[1].name: duplicate route name "r0" (also routes[0])');
    }
  });

  it('rejects a missing file with a plain message', () => {
    expect(() => loadConfigFile('/nonexistent/outrigger.yaml')).toThrow(ConfigError);
    try {
      loadConfigFile('/nonexistent/outrigger.yaml');
    } catch (err) {
      expect((err as ConfigError).problems[0]).toMatch(/^cannot read the file: ENOENT/);
    }
  });
});

describe('defaults and merging', () => {
  it('applies every documented default to a config of only `routes: []` (an empty file is refused, issue 9)', () => {
    const c = load('routes: []\n').config;
    expect(c.listen).toBe('0.0.0.0:15001');
    expect(c.admin.listen).toBe('127.0.0.1:15000');
    expect(c.metrics.listen).toBe('0.0.0.0:15090');
    expect(c.log).toEqual({ level: 'info', accessLog: false });
    expect(c.defaults.timeout).toBe(15_000);
    expect(c.defaults.bodyTimeout).toBe(30_000);
    expect(c.defaults.retry).toEqual({
      attempts: 2,
      perTryTimeout: 0,
      on: ['connect-failure', 'refused-stream', 'reset', 'gateway-error'],
      statuses: [],
      methods: ['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'],
      idempotencyHeader: 'idempotency-key',
      grpcMethods: [],
      backoff: { base: 25, max: 250, jitter: 'full' },
      retryAfter: { honor: true, max: 2000 },
      budget: { enabled: true, ratio: 0.2, minPerSecond: 10, window: 10_000 },
      bufferBody: 65536,
    });
    expect(c.defaults.breaker).toMatchObject({ halfOpenAfter: 10_000, probeTimeout: 5000, failOn: ['connect-failure', 'reset', 'timeout', 'gateway-error'] });
    expect(c.defaults.concurrency).toEqual({ max: 1024, queue: 0 });
    expect(c.routes).toEqual([]);
  });

  it('applies upstream defaults', () => {
    const c = load(UP).config;
    expect(c.upstreams.a).toEqual({ endpoints: ['http://127.0.0.1:1'], connectTimeout: 1000, maxConnections: 128, keepAliveTimeout: 4000, protocol: 'http1' });
  });

  it('merges defaults into a route key by key', () => {
    const c = load(
      `${UP}defaults:\n  timeout: 5s\n  retry: { attempts: 4, backoff: { base: 10ms, max: 1s }, budget: { ratio: 0.5 } }\n  concurrency: { max: 10, queue: 2 }\nroutes:\n  - { name: r0, upstream: a, timeout: 2s, retry: { statuses: [429], on: [retriable-status], backoff: { max: 500ms } }, concurrency: { queue: 0 } }\n`,
    ).config;
    const r = c.routes[0]!;
    expect(r.timeout).toBe(2000);
    expect(r.bodyTimeout).toBe(30_000);
    expect(r.retry.attempts).toBe(4);
    expect(r.retry.statuses).toEqual([429]);
    expect(r.retry.on).toEqual(['retriable-status']);
    expect(r.retry.backoff).toEqual({ base: 10, max: 500, jitter: 'full' });
    expect(r.retry.budget).toEqual({ enabled: true, ratio: 0.5, minPerSecond: 10, window: 10_000 });
    expect(r.concurrency).toEqual({ max: 10, queue: 0 });
  });

  it('names the breaker after the route, defaults to 5 consecutive failures, and lets a route pick failureRate', () => {
    const c = load(
      `${UP}routes:\n  - { name: r0, upstream: a }\n  - { name: r1, upstream: a, breaker: { failureRate: { threshold: 0.5 } } }\n  - { name: r2, upstream: a, breaker: { name: shared } }\n`,
    ).config;
    expect(c.routes[0]!.breaker).toEqual({
      enabled: true,
      name: 'r0',
      consecutiveFailures: 5,
      halfOpenAfter: 10_000,
      failOn: ['connect-failure', 'reset', 'timeout', 'gateway-error'],
      probeTimeout: 5000,
    });
    expect(c.routes[1]!.breaker.consecutiveFailures).toBeUndefined();
    expect(c.routes[1]!.breaker.failureRate).toEqual({ threshold: 0.5, window: 10_000, minRequests: 20 });
    expect(c.routes[2]!.breaker.name).toBe('shared');
  });

  it('inherits a failureRate from defaults unless the route sets consecutiveFailures', () => {
    const c = load(
      `${UP}defaults: { breaker: { failureRate: { threshold: 0.3, minRequests: 4 } } }\nroutes:\n  - { name: r0, upstream: a }\n  - { name: r1, upstream: a, breaker: { consecutiveFailures: 2 } }\n`,
    ).config;
    expect(c.routes[0]!.breaker.failureRate).toEqual({ threshold: 0.3, window: 10_000, minRequests: 4 });
    expect(c.routes[0]!.breaker.consecutiveFailures).toBeUndefined();
    expect(c.routes[1]!.breaker.consecutiveFailures).toBe(2);
    expect(c.routes[1]!.breaker.failureRate).toBeUndefined();
  });

  it('accepts plain numbers as milliseconds and bytes', () => {
    const r = load(`${UP}routes: [{ name: r0, upstream: a, timeout: 1200, retry: { bufferBody: 100, perTryTimeout: 300 } }]\n`).config.routes[0]!;
    expect(r.timeout).toBe(1200);
    expect(r.retry.perTryTimeout).toBe(300);
    expect(r.retry.bufferBody).toBe(100);
  });

  it('lower-cases the idempotency header', () => {
    const r = load(`${UP}routes: [{ name: r0, upstream: a, retry: { idempotencyHeader: X-Idem-Key } }]\n`).config.routes[0]!;
    expect(r.retry.idempotencyHeader).toBe('x-idem-key');
  });

  it('shares a breaker between routes with identical settings', () => {
    const c = load(`${UP}routes:\n  - { name: r0, upstream: a, breaker: { name: s, consecutiveFailures: 2 } }\n  - { name: r1, upstream: a, breaker: { name: s, consecutiveFailures: 2 } }\n`).config;
    expect(c.routes.map((r) => r.breaker.name)).toEqual(['s', 's']);
  });

  it('reads a JSON config by its extension, and freezes the result', () => {
    const loaded = load(JSON.stringify({ upstreams: { a: { endpoints: ['http://127.0.0.1:1'] } }, routes: [{ name: 'r0', upstream: 'a' }] }), '/tmp/c.json');
    expect(loaded.config.routes[0]!.name).toBe('r0');
    expect(Object.isFrozen(loaded.config.routes[0]!.retry)).toBe(true);
    expect(loaded.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it('reads fallback.bodyFile relative to the config file', () => {
    dir = mkdtempSync(join(tmpdir(), 'outrigger-load-'));
    writeFileSync(join(dir, 'fallback.json'), '{"from":"file"}');
    const cfgPath = join(dir, 'outrigger.yaml');
    writeFileSync(cfgPath, `${UP}routes: [{ name: r0, upstream: a, fallback: { bodyFile: fallback.json } }]\n`);
    expect(loadConfigFile(cfgPath).config.routes[0]!.fallback?.body).toBe('{"from":"file"}');
    const problems = problemsOf(`${UP}routes: [{ name: r0, upstream: a, fallback: { bodyFile: missing.json } }]\n`, cfgPath);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^routes\[0\]\.fallback\.bodyFile: cannot read "missing\.json": ENOENT/);
  });

  it('applies defaults.fallback to routes without their own', () => {
    const c = load(`${UP}defaults: { fallback: { body: d } }\nroutes:\n  - { name: r0, upstream: a }\n  - { name: r1, upstream: a, fallback: { body: own, status: 503 } }\n`).config;
    expect(c.routes[0]!.fallback).toMatchObject({ body: 'd', status: 200, on: ['breaker-open', 'timeout', 'upstream-unavailable'] });
    expect(c.routes[1]!.fallback).toMatchObject({ body: 'own', status: 503 });
  });
});

describe('fallback.staleIfError', () => {
  it('is off unless present; {} enables it with the documented defaults, vary lower-cased', () => {
    const c = load(`${UP}routes:\n  - { name: r0, upstream: a, fallback: { body: x } }\n  - { name: r1, upstream: a, fallback: { staleIfError: {} } }\n  - { name: r2, upstream: a, fallback: { staleIfError: { maxAge: 30s, maxEntries: 10, maxBytes: 1MiB, maxEntryBytes: 64KiB, vary: [Accept-Language] } } }\n`).config;
    expect(c.routes[0]!.fallback?.staleIfError).toBeUndefined();
    expect(c.routes[1]!.fallback?.staleIfError).toEqual({ maxAge: 300_000, maxEntries: 1000, maxBytes: 32 * 1024 * 1024, maxEntryBytes: 1024 * 1024, vary: ['accept', 'accept-encoding'] });
    expect(c.routes[2]!.fallback?.staleIfError).toEqual({ maxAge: 30_000, maxEntries: 10, maxBytes: 1024 * 1024, maxEntryBytes: 64 * 1024, vary: ['accept-language'] });
  });

  it('with it, the static response applies only when body or bodyFile is set', () => {
    const c = load(`${UP}routes:\n  - { name: r0, upstream: a, fallback: {} }\n  - { name: r1, upstream: a, fallback: { staleIfError: {}, status: 503 } }\n  - { name: r2, upstream: a, fallback: { staleIfError: {}, body: '' } }\n`).config;
    expect(c.routes.map((r) => r.fallback?.staticResponse)).toEqual([true, false, true]);
  });

  it('reports bad values with their path', () => {
    expect(problemsOf(`${UP}routes: [{ name: r0, upstream: a, fallback: { staleIfError: { maxAge: 0, maxEntries: 0, maxBytes: 10B, vary: ["bad name"], ttl: 1 } } }]\n`)).toEqual(
      expect.arrayContaining([
        'routes[0].fallback.staleIfError.maxAge: expected a maxAge above 0',
        'routes[0].fallback.staleIfError.maxEntries: expected a number >= 1, got number 0',
        'routes[0].fallback.staleIfError.maxBytes: expected a size from 1KiB to 4GiB',
        'routes[0].fallback.staleIfError.vary[0]: expected a header name (RFC 9110 token), got "bad name"',
        'routes[0].fallback.staleIfError.ttl: unknown key',
      ]),
    );
  });
});

describe('resolveConfigPath', () => {
  it('takes --config, then OUTRIGGER_CONFIG, then config/outrigger.yaml', () => {
    expect(resolveConfigPath('/a/flag.yaml', { OUTRIGGER_CONFIG: '/b/env.yaml' })).toBe('/a/flag.yaml');
    expect(resolveConfigPath(undefined, { OUTRIGGER_CONFIG: '/b/env.yaml' })).toBe('/b/env.yaml');
    expect(resolveConfigPath(undefined, {})).toBe(resolve('config/outrigger.yaml'));
    expect(resolveConfigPath(undefined, { OUTRIGGER_CONFIG: '' })).toBe(resolve('config/outrigger.yaml'));
  });
});

describe('the bundled config', () => {
  it('config/outrigger.yaml is valid and its default route has a fallback', () => {
    const c = loadConfigFile(resolve('config/outrigger.yaml')).config;
    expect(c.routes.length).toBeGreaterThan(0);
    expect(c.routes[0]!.fallback).toBeDefined();
  });
});

describe('config files that are not a config (issue 9)', () => {
  it('refuses an empty, whitespace-only or comment-only file', () => {
    for (const text of ['', '   \n\t\n', '\n']) expect(() => loadConfigText(text, '/tmp/e.yaml')).toThrow(/the config file is empty/);
    expect(() => loadConfigText('# nothing here\n', '/tmp/e.yaml')).toThrow(/the config file is empty/);
  });

  it('names a top level that is not a mapping', () => {
    expect(() => loadConfigText('- a\n- b\n', '/tmp/l.yaml')).toThrow(/the top level must be a mapping, got a list/);
    expect(() => loadConfigText('just a string\n', '/tmp/s.yaml')).toThrow(/the top level must be a mapping, got a string/);
    expect(() => loadConfigText('42\n', '/tmp/n.yaml')).toThrow(/the top level must be a mapping, got a number/);
    expect(() => loadConfigText('[1, 2]', '/tmp/l.json')).toThrow(/got a list/);
  });

  it('still accepts an explicit routes: []', () => {
    expect(loadConfigText('routes: []\n', '/tmp/r.yaml').config.routes).toEqual([]);
  });
});
