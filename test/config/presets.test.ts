import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { ConfigError, loadConfigText, type EffectiveRoute, type LoadedConfig } from '../../src/config/load.js';
import { BUILTIN_PRESETS, BUILTIN_PRESETS_INPUT, leaves } from '../../src/config/presets.js';

const UP = `upstreams: { a: { endpoints: ["http://127.0.0.1:1"] } }\n`;
const PATH = '/tmp/outrigger-presets-test.yaml';

function load(yaml: string, path = PATH): LoadedConfig {
  return loadConfigText(`${UP}${yaml}`, path);
}

/** The one route of a config that must be valid. */
function route(yaml: string): EffectiveRoute {
  return load(yaml).config.routes[0] as EffectiveRoute;
}

function problemsOf(yaml: string, path = PATH): string[] {
  try {
    load(yaml, path);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems;
  }
  throw new Error('expected the config to be rejected');
}

const warningsOf = (yaml: string): string[] => load(yaml).warnings;

let dir: string | undefined;
afterEach(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe('merge order: built-in defaults, defaults, each preset in order, the route', () => {
  const yaml = `defaults: { timeout: 10s, retry: { attempts: 1, backoff: { base: 50ms } } }
presets:
  p1: { timeout: 5s, retry: { attempts: 3, backoff: { max: 2s } }, concurrency: { max: 8 } }
  p2: { timeout: 4s, retry: { backoff: { max: 1s } } }
routes:
  - { name: r0, upstream: a, use: [p1, p2], timeout: 3s }
`;

  it('takes each key from the last layer that sets it, key by key', () => {
    const r = route(yaml);
    expect(r.timeout).toBe(3000); // route over p2 over p1 over defaults
    expect(r.retry.attempts).toBe(3); // p1 over defaults
    expect(r.retry.backoff).toEqual({ base: 50, max: 1000, jitter: 'full' }); // defaults, p2, built-in
    expect(r.concurrency).toEqual({ max: 8, queue: 0 }); // p1, built-in
    expect(r.bodyTimeout).toBe(30_000); // built-in
    expect(r.use).toEqual(['p1', 'p2']);
  });

  it('records the source of every value', () => {
    const s = route(yaml).sources;
    expect(s).toMatchObject({
      timeout: 'route',
      'retry.attempts': 'preset:p1',
      'retry.backoff.base': 'defaults',
      'retry.backoff.max': 'preset:p2',
      'retry.backoff.jitter': 'builtin',
      'concurrency.max': 'preset:p1',
      'concurrency.queue': 'builtin',
      bodyTimeout: 'builtin',
      critical: 'builtin',
      'breaker.name': 'builtin',
      'breaker.consecutiveFailures': 'builtin',
    });
    expect(s.fallback).toBeUndefined();
  });

  it('has a source for exactly the policy keys of the effective route', () => {
    const r = route(yaml);
    const { name: _n, match: _m, upstream: _u, preserveHost: _p, grpc: _g, use: _use, sources, ...policy } = r;
    expect(Object.keys(sources).sort()).toEqual(leaves(policy).map(([k]) => k).sort());
  });

  it('a route without use is merged as before: built-ins and defaults only', () => {
    const r = route(`defaults: { timeout: 10s }\nroutes: [{ name: r0, upstream: a }]\n`);
    expect(r.use).toEqual([]);
    expect(r.timeout).toBe(10_000);
    expect(r.sources.timeout).toBe('defaults');
    expect(r.sources['retry.attempts']).toBe('builtin');
    expect(r.critical).toBe(false);
  });

  it('counts a key written in defaults as defaults, even when it equals the built-in value', () => {
    expect(route(`defaults: { timeout: 15s }\nroutes: [{ name: r0, upstream: a }]\n`).sources.timeout).toBe('defaults');
  });

  it('replaces lists, fallback, halfOpenAfter and the trip condition whole', () => {
    const r = route(`defaults:
  breaker: { consecutiveFailures: 3, halfOpenAfter: { base: 1s, max: 10s } }
presets:
  p: { retry: { on: [reset] }, breaker: { failureRate: { threshold: 0.4 }, halfOpenAfter: 2s }, fallback: { status: 503, body: down } }
routes: [{ name: r0, upstream: a, use: [p] }]
`);
    expect(r.retry.on).toEqual(['reset']);
    expect(r.breaker.consecutiveFailures).toBeUndefined();
    expect(r.breaker.failureRate).toEqual({ threshold: 0.4, window: 10_000, minRequests: 20 });
    expect(r.breaker.halfOpenAfter).toBe(2000);
    expect(r.fallback).toEqual({ on: ['breaker-open', 'timeout', 'upstream-unavailable'], status: 503, headers: {}, body: 'down', staticResponse: true });
    expect(r.sources).toMatchObject({ 'breaker.failureRate': 'preset:p', 'breaker.halfOpenAfter': 'preset:p', fallback: 'preset:p', 'retry.on': 'preset:p' });
    expect(r.sources['breaker.consecutiveFailures']).toBeUndefined();
  });

  it('lets the route set the trip condition back, and a preset set critical and the breaker name', () => {
    const c = load(`presets:
  shared: { critical: true, breaker: { name: payments, failureRate: { threshold: 0.5 } } }
routes:
  - { name: r0, upstream: a, use: [shared] }
  - { name: r1, upstream: a, use: [shared] }
  - { name: r2, upstream: a, use: [shared], critical: false, breaker: { name: other, consecutiveFailures: 2 } }
`).config;
    expect(c.routes.map((r) => [r.critical, r.breaker.name])).toEqual([
      [true, 'payments'],
      [true, 'payments'],
      [false, 'other'],
    ]);
    expect(c.routes[2]!.breaker.consecutiveFailures).toBe(2);
    expect(c.routes[2]!.breaker.failureRate).toBeUndefined();
    expect(c.routes[2]!.sources).toMatchObject({ critical: 'route', 'breaker.name': 'route', 'breaker.consecutiveFailures': 'route' });
  });

  it('reads a preset fallback.bodyFile relative to the config file, and names the preset when it cannot', () => {
    dir = mkdtempSync(join(tmpdir(), 'outrigger-presets-'));
    writeFileSync(join(dir, 'down.json'), '{"down":true}');
    const cfg = join(dir, 'outrigger.yaml');
    const r = loadConfigText(`${UP}presets: { p: { fallback: { bodyFile: down.json } } }\nroutes: [{ name: r0, upstream: a, use: [p] }]\n`, cfg).config.routes[0]!;
    expect(r.fallback?.body).toBe('{"down":true}');
    const problems = problemsOf(`presets: { p: { fallback: { bodyFile: gone.json } } }\nroutes: []\n`, cfg);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^presets\.p\.fallback\.bodyFile: cannot read "gone\.json": ENOENT/);
  });

  it('shows every preset in force in the config, built-ins first', () => {
    const c = load(`presets: { mine: { timeout: 1s } }\nroutes: []\n`).config;
    expect(Object.keys(c.presets)).toEqual(['transient', 'critical', 'background', 'no-retry', 'mine']);
    expect(c.presets.mine).toEqual({ timeout: 1000 });
    expect(c.presets.transient).toEqual(BUILTIN_PRESETS.transient);
  });
});

describe('built-in presets', () => {
  const with_ = (name: string) => route(`routes: [{ name: r0, upstream: a, use: [${name}] }]\n`);

  it('transient: three quick retries with full jitter, on network errors only', () => {
    const r = with_('transient');
    expect(r.retry.attempts).toBe(3);
    expect(r.retry.on).toEqual(['connect-failure', 'refused-stream', 'reset']);
    expect(r.retry.backoff).toEqual({ base: 10, max: 100, jitter: 'full' });
    expect(r.timeout).toBe(15_000);
  });

  it('critical: critical, a failure-rate breaker that probes soon, no retry of any 5xx', () => {
    const r = with_('critical');
    expect(r.critical).toBe(true);
    expect(r.breaker.failureRate).toEqual({ threshold: 0.5, window: 30_000, minRequests: 20 });
    expect(r.breaker.consecutiveFailures).toBeUndefined();
    expect(r.breaker.halfOpenAfter).toEqual({ base: 5000, max: 30_000 });
    expect(r.retry.on).not.toContain('gateway-error');
    expect(r.retry.on).not.toContain('5xx');
    expect(r.retry.on).not.toContain('retriable-status');
  });

  it('background: patient retries with decorrelated jitter under a long deadline', () => {
    const r = with_('background');
    expect(r.timeout).toBe(120_000);
    expect(r.retry).toMatchObject({ attempts: 6, perTryTimeout: 30_000, backoff: { base: 500, max: 30_000, jitter: 'decorrelated' }, retryAfter: { honor: true, max: 30_000 } });
  });

  it('no-retry: no retries, everything else as before', () => {
    const r = with_('no-retry');
    expect(r.retry.attempts).toBe(0);
    expect(r.sources['retry.attempts']).toBe('preset:no-retry');
    expect(r.sources['retry.on']).toBe('builtin');
  });

  it('sets only policy keys a preset may set, and passes the cross-field checks with the built-in defaults', () => {
    for (const name of Object.keys(BUILTIN_PRESETS)) expect(() => with_(name)).not.toThrow();
  });

  it('are documented in the README with exactly their values', () => {
    const readme = readFileSync('README.md', 'utf8');
    const section = readme.slice(readme.indexOf('#### Built-in presets'));
    const documented: Record<string, unknown> = {};
    for (const m of section.matchAll(/^\| `([a-z-]+)` \| `(\{.*?\})` \|/gm)) documented[m[1] as string] = parseYaml(m[2] as string);
    expect(documented).toEqual(BUILTIN_PRESETS_INPUT);
  });

  it('cannot be redefined; a preset of another name builds on one', () => {
    expect(problemsOf(`presets: { transient: { retry: { attempts: 5 } } }\nroutes: []\n`)).toEqual([
      'presets.transient: "transient" is a built-in preset and cannot be redefined; give yours another name (it can build on the built-in with use: [transient])',
    ]);
    const r = route(`presets: { eager: { use: [transient], retry: { attempts: 5 } } }\nroutes: [{ name: r0, upstream: a, use: [eager] }]\n`);
    expect(r.retry.attempts).toBe(5);
    expect(r.retry.backoff.max).toBe(100);
    expect(r.sources).toMatchObject({ 'retry.attempts': 'preset:eager', 'retry.backoff.max': 'preset:transient' });
  });
});

describe('presets using presets', () => {
  it('applies what a preset uses before the preset, so the preset overrides it, without a warning', () => {
    const l = load(`presets:
  base: { timeout: 5s, retry: { attempts: 1 } }
  child: { use: [base], retry: { attempts: 4 } }
routes: [{ name: r0, upstream: a, use: [child] }]
`);
    const r = l.config.routes[0]!;
    expect(r.timeout).toBe(5000);
    expect(r.retry.attempts).toBe(4);
    expect(r.sources).toMatchObject({ timeout: 'preset:base', 'retry.attempts': 'preset:child' });
    expect(l.warnings).toEqual([]);
  });

  it('applies a preset reached twice once, where it is first reached', () => {
    const l = load(`presets:
  base: { retry: { attempts: 1, perTryTimeout: 1s } }
  left: { use: [base], retry: { attempts: 2 } }
  right: { use: [base], timeout: 9s }
routes: [{ name: r0, upstream: a, use: [left, right] }]
`);
    const r = l.config.routes[0]!;
    // base, left, right: base applied again after left would undo left's attempts.
    expect(r.retry.attempts).toBe(2);
    expect(r.timeout).toBe(9000);
    expect(l.warnings).toEqual([]);
  });

  it('reports every cycle at the use entry that closes it', () => {
    expect(problemsOf(`presets:\n  self: { use: [self] }\nroutes: []\n`)).toEqual(['presets.self.use[0]: preset cycle "self" → "self"; presets may use other presets, but not themselves']);
    expect(
      problemsOf(`presets:
  a: { use: [transient, b] }
  b: { use: [c] }
  c: { use: [a] }
  d: { use: [b] }
routes: [{ name: r0, upstream: a, use: [d] }]
`),
    ).toEqual(['presets.c.use[0]: preset cycle "a" → "b" → "c" → "a"; presets may use other presets, but not themselves']);
    expect(
      problemsOf(`presets:
  x: { use: [y] }
  y: { use: [x, z] }
  z: { use: [z] }
routes: []
`).sort(),
    ).toEqual([
      'presets.y.use[0]: preset cycle "x" → "y" → "x"; presets may use other presets, but not themselves',
      'presets.z.use[0]: preset cycle "z" → "z"; presets may use other presets, but not themselves',
    ]);
  });
});

describe('unknown, repeated and badly written presets', () => {
  it('names an unknown preset in a route and in a preset, with the known ones', () => {
    expect(problemsOf(`presets: { mine: { use: [transiant] } }\nroutes: [{ name: r0, upstream: a, use: [critical, nope] }]\n`)).toEqual([
      'presets.mine.use[0]: unknown preset "transiant" (known: transient, critical, background, no-retry, mine)',
      'routes[0].use[1]: unknown preset "nope" (known: transient, critical, background, no-retry, mine)',
    ]);
  });

  it('refuses a preset listed twice in one use list', () => {
    expect(problemsOf(`presets: { p: { use: [critical, critical] } }\nroutes: [{ name: r0, upstream: a, use: [transient, p, transient] }]\n`)).toEqual([
      'presets.p.use[1]: preset "critical" is listed twice (also presets.p.use[0])',
      'routes[0].use[2]: preset "transient" is listed twice (also routes[0].use[0])',
    ]);
  });

  it('warns about a preset listed after one that already uses it', () => {
    expect(warningsOf(`presets: { pay: { use: [critical], timeout: 2s } }\nroutes: [{ name: r0, upstream: a, use: [pay, critical] }]\n`)).toEqual([
      'routes[0].use[1]: preset "critical" is already applied through routes[0].use[0] ("pay" uses it), so listing it again changes nothing; a preset applies once, where it is first reached',
    ]);
  });

  it('reports schema problems with the path of the key', () => {
    expect(
      problemsOf(`presets:
  p: { retyr: {}, name: x, match: {}, retry: { backoff: { base: fast } }, use: [Bad Name], critical: yes-please }
  "bad name": {}
defaults: { use: [transient] }
routes: [{ name: r0, upstream: a, use: transient }]
`)
        .flatMap((p) => p.split('\n  '))
        .sort(),
    ).toEqual(
      [
        'presets.p.retyr: unknown key',
        'presets.p.name: unknown key',
        'presets.p.match: unknown key',
        'presets.p.retry.backoff.base: expected a duration like "250ms", got "fast"',
        'presets.p.use[0]: expected a name of letters, digits, "_", "." or "-" (at most 63 characters), got "Bad Name"',
        'presets.p.critical: expected boolean, got "yes-please"',
        'presets.bad name: expected a name of letters, digits, "_", "." or "-" (at most 63 characters), got "bad name"',
        'defaults.use: unknown key',
        'routes[0].use: expected array, got "transient"',
      ].sort(),
    );
  });

  it('refuses both trip conditions in one preset', () => {
    expect(problemsOf(`presets: { p: { breaker: { consecutiveFailures: 2, failureRate: { threshold: 0.5 } } } }\nroutes: []\n`)).toEqual([
      'presets.p.breaker: set consecutiveFailures or failureRate, not both',
    ]);
  });

  it('names the preset a value came from in a cross-field problem of the route', () => {
    expect(
      problemsOf(`presets:
  slow: { retry: { perTryTimeout: 20s, backoff: { base: 2s } } }
routes: [{ name: r0, upstream: a, use: [slow], timeout: 10s, retry: { backoff: { max: 1s } } }]
`),
    ).toEqual([
      'routes[0].retry.perTryTimeout: 20000ms (from presets.slow.retry.perTryTimeout) is longer than the route timeout of 10000ms',
      'routes[0].retry.backoff: base (2000ms) (from presets.slow.retry.backoff.base) is greater than max (1000ms)',
    ]);
    expect(problemsOf(`routes: [{ name: r0, upstream: a, use: [background], timeout: 10s }]\n`)).toEqual([
      'routes[0].retry.perTryTimeout: 30000ms (from presets.background.retry.perTryTimeout) is longer than the route timeout of 10000ms',
    ]);
  });

  it('holds routes sharing a breaker through a preset to identical settings', () => {
    expect(
      problemsOf(`presets: { shared: { breaker: { name: s } } }
routes:
  - { name: r0, upstream: a, use: [shared] }
  - { name: r1, upstream: a, use: [shared, critical] }
`),
    ).toEqual(['routes[1].breaker: shares breaker "s" with routes[0] but with different settings; shared breakers need identical settings']);
  });
});

describe('conflicting keys', () => {
  it('warns when a later preset overrides a different value from an earlier one, naming both paths', () => {
    const l = load(`presets:
  quick: { retry: { attempts: 1, backoff: { base: 5ms } } }
routes:
  - { name: r0, upstream: a }
  - { name: r1, upstream: a, use: [quick, transient] }
`);
    expect(l.warnings).toEqual([
      'routes[1].use[1]: presets.transient.retry.attempts (3) overrides presets.quick.retry.attempts (1) from routes[1].use[0]; the later preset wins (set routes[1].retry.attempts to choose explicitly)',
      'routes[1].use[1]: presets.transient.retry.backoff.base (10) overrides presets.quick.retry.backoff.base (5) from routes[1].use[0]; the later preset wins (set routes[1].retry.backoff.base to choose explicitly)',
    ]);
    expect(l.config.routes[1]!.retry.attempts).toBe(3);
  });

  it('is not a conflict when the values are equal, or when the route sets the key itself', () => {
    // transient and critical both set retry.on, to the same list.
    expect(warningsOf(`routes: [{ name: r0, upstream: a, use: [transient, critical] }]\n`)).toEqual([]);
    expect(warningsOf(`routes: [{ name: r0, upstream: a, use: [no-retry, transient], retry: { attempts: 1 } }]\n`)).toEqual([]);
  });

  it('is not a conflict with defaults, which every preset overrides by design', () => {
    expect(warningsOf(`defaults: { retry: { attempts: 5 } }\nroutes: [{ name: r0, upstream: a, use: [no-retry] }]\n`)).toEqual([]);
  });

  it('treats the two trip conditions as one key', () => {
    expect(warningsOf(`presets: { p: { breaker: { consecutiveFailures: 2 } } }\nroutes: [{ name: r0, upstream: a, use: [critical, p] }]\n`)).toEqual([
      'routes[0].use[1]: presets.p.breaker.consecutiveFailures (2) overrides presets.critical.breaker.failureRate ({"threshold":0.5,"window":30000,"minRequests":20}) from routes[0].use[0]; the later preset wins (set routes[0].breaker.consecutiveFailures to choose explicitly)',
    ]);
  });

  it('says which listed preset brought in a preset reached through use', () => {
    expect(warningsOf(`presets:\n  bundle: { use: [no-retry, transient] }\nroutes: [{ name: r0, upstream: a, use: [bundle] }]\n`)).toEqual([
      'routes[0].use[0] ("bundle" uses "transient"): presets.transient.retry.attempts (3) overrides presets.no-retry.retry.attempts (0) from routes[0].use[0] ("bundle" uses "no-retry"); the later preset wins (set routes[0].retry.attempts to choose explicitly)',
    ]);
  });

  it('leaves the config valid: warnings are not problems', () => {
    const l = load(`routes: [{ name: r0, upstream: a, use: [background, transient] }]\n`);
    expect(l.warnings.length).toBeGreaterThan(0);
    expect(l.warnings.every((w) => w.startsWith('routes[0].use[1]: presets.transient.retry.'))).toBe(true);
    expect(l.config.routes[0]!.retry.attempts).toBe(3);
  });
});

describe('the README example', () => {
  it('loads without warnings and merges as the README says', () => {
    const readme = readFileSync('README.md', 'utf8');
    const section = readme.slice(readme.indexOf('### Presets'));
    const yaml = /```yaml\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const l = loadConfigText(yaml, PATH);
    expect(l.warnings).toEqual([]);
    const r = l.config.routes[0]!;
    expect(r.name).toBe('checkout');
    expect(r).toMatchObject({ timeout: 3000, critical: true, retry: { attempts: 1, backoff: { base: 10, max: 100 } }, breaker: { failureRate: { threshold: 0.5 } } });
    const json = /```json\n([\s\S]*?)```/.exec(section)?.[1] ?? '';
    const shown = [...json.matchAll(/"([\w.]+)": "(builtin|defaults|route|preset:[\w.-]+)"/g)];
    expect(shown.length).toBeGreaterThanOrEqual(9);
    for (const [, key, source] of shown) expect(r.sources[key as string], key).toBe(source);
  });
});
