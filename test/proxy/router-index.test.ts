// The indexed router (16 routes and more) against the linear first-match scan it replaces,
// on generated configs: every request must pick the same route.
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { loadConfigText, type EffectiveRoute } from '../../src/config/load.js';
import { Router, compileMatcher, parseTarget, type Matcher, type RequestTarget } from '../../src/proxy/router.js';
import { mulberry32 as prng } from '../helpers/prng.js';

const HOSTS = ['a.test', 'b.test', 'A.Test', '*.test', 'a.test:8080', '*', undefined];
const SEGS = ['api', 'v1', 'v2', 'users', 'a', 'ab', ''];
const METHODS = ['GET', 'POST', 'PUT'];

function generate(seed: number, n: number): { routes: EffectiveRoute[]; rand: () => number } {
  const rand = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
  const path = (): string => `/${Array.from({ length: 1 + Math.floor(rand() * 3) }, () => pick(SEGS)).join('/')}`;
  const routes = Array.from({ length: n }, (_, i) => {
    const match: Record<string, unknown> = {};
    const host = pick(HOSTS);
    if (host !== undefined) match.host = host;
    const r = rand();
    if (r < 0.5) match.pathPrefix = rand() < 0.2 ? `${path()}/` : path();
    else if (r < 0.7) match.path = path();
    else if (r < 0.8) match.pathRegex = '/api/v[0-9]+/.*';
    // A route with no path rule gets a host, so that catch-alls do not swallow the test.
    else match.host = pick(HOSTS.slice(0, 5));
    if (rand() < 0.2) match.methods = [pick(METHODS)];
    if (rand() < 0.1) match.headers = { 'x-tenant': pick(['one', 'two']) };
    return { name: `r${i}`, upstream: 'u', match };
  });
  const text = stringify({ upstreams: { u: { endpoints: ['http://127.0.0.1:1'] } }, routes });
  return { routes: loadConfigText(text, '/tmp/gen.yaml').config.routes as EffectiveRoute[], rand };
}

function linear<T>(ms: ReadonlyArray<Matcher<T>>, method: string, t: RequestTarget, headers: Record<string, string>): T | null {
  for (const m of ms) if (m.matches(method, t, headers)) return m.value;
  return null;
}

describe('the indexed router', () => {
  it.each([1, 2, 3, 4, 5, 6, 7, 8])('picks what the linear first-match scan picks (seed %i)', (seed) => {
    const { routes, rand } = generate(seed, 40 + seed * 25);
    const ms = routes.map((r) => compileMatcher(r, r.name));
    const router = new Router(ms);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const picked = new Set<string | null>();
    for (let i = 0; i < 3000; i++) {
      const segs = Array.from({ length: Math.floor(rand() * 4) }, () => pick(SEGS));
      const url = `/${segs.join('/')}${rand() < 0.2 ? '/' : ''}${rand() < 0.1 ? '?q=1' : ''}`;
      const host = pick(['a.test', 'A.TEST', 'b.test', 'x.test', 'a.test:8080', 'other', undefined]);
      const t = parseTarget(url, host) as RequestTarget;
      const method = pick(METHODS);
      const headers: Record<string, string> = rand() < 0.3 ? { 'x-tenant': pick(['one', 'two']) } : {};
      const want = linear(ms, method, t, headers);
      expect(router.match(method, t, headers), `seed ${seed}: ${method} ${host ?? '(no host)'} ${url}`).toBe(want);
      picked.add(want);
    }
    // The generator must spread requests over many routes, or the comparison proves little.
    expect(picked.size).toBeGreaterThan(10);
  });

  it('finds the last of 1,000 host-and-prefix routes, and misses cleanly', () => {
    const routes = Array.from({ length: 1000 }, (_, i) => ({ name: `r${i}`, upstream: 'u', match: { host: `svc${i}.test`, pathPrefix: `/p${i}` } }));
    const cfg = loadConfigText(stringify({ upstreams: { u: { endpoints: ['http://127.0.0.1:1'] } }, routes }), '/tmp/big.yaml').config.routes as EffectiveRoute[];
    const router = new Router(cfg.map((r) => compileMatcher(r, r.name)));
    expect(router.match('GET', parseTarget('/p999/x', 'svc999.test') as RequestTarget, {})).toBe('r999');
    expect(router.match('GET', parseTarget('/p998', 'svc999.test') as RequestTarget, {})).toBeNull();
    expect(router.match('GET', parseTarget('/p999', 'nope.test') as RequestTarget, {})).toBeNull();
  });
});
