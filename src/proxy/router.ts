// Route matching, compiled once per config: first match wins. Regexes are built here,
// never per request.
import type { EffectiveRoute } from '../config/load.js';
import type { HttpConfig } from '../config/schema.js';
import { ProxyError } from '../errors.js';
import { normalizePath, rewritePath } from './normalize-path.js';

export interface RequestTarget {
  /** Lower-cased host without port ("" when absent). */
  host: string;
  /** Host exactly as sent, port included. */
  authority: string;
  /** Path without query. */
  path: string;
  /** "?..." or "". */
  query: string;
}

type HeaderTest = (value: string | string[] | undefined) => boolean;

export interface Matcher<T> {
  readonly value: T;
  matches(method: string, target: RequestTarget, headers: Record<string, string | string[] | undefined>): boolean;
}

function hostTest(pattern: string | undefined): ((t: RequestTarget) => boolean) | null {
  if (pattern === undefined || pattern === '*') return null;
  const p = pattern.toLowerCase();
  if (p.startsWith('*.')) {
    const suffix = p.slice(1);
    return (t) => t.host.endsWith(suffix) && t.host.length > suffix.length;
  }
  // A pattern with a port compares the whole authority; without one the port is ignored.
  if (/:\d+$/.test(p)) return (t) => t.authority.toLowerCase() === p;
  return (t) => t.host === p;
}

/** Gateway API PathPrefix semantics: matches whole path segments ("/a" matches "/a", "/a/b", not "/ab"). */
function prefixTest(prefix: string): (path: string) => boolean {
  const p = prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix;
  if (p === '/') return () => true;
  return (path) => path.startsWith(p) && (path.length === p.length || path.charCodeAt(p.length) === 47 /* / */);
}

function headerTest(spec: string | { exact: string } | { prefix: string } | { regex: string } | { present: boolean }): HeaderTest {
  const first = (v: string | string[] | undefined) => (Array.isArray(v) ? v.join(', ') : v);
  if (typeof spec === 'string') return (v) => first(v) === spec;
  if ('exact' in spec) return (v) => first(v) === spec.exact;
  if ('prefix' in spec) return (v) => first(v)?.startsWith(spec.prefix) ?? false;
  if ('regex' in spec) {
    const re = new RegExp(`^(?:${spec.regex})$`);
    return (v) => {
      const s = first(v);
      return s !== undefined && re.test(s);
    };
  }
  const want = spec.present;
  return (v) => (v !== undefined) === want;
}

export function compileMatcher<T>(route: EffectiveRoute, value: T): Matcher<T> {
  const m = route.match;
  const host = hostTest(m.host);
  let path: ((p: string) => boolean) | null = null;
  if (m.pathPrefix !== undefined) path = prefixTest(m.pathPrefix);
  else if (m.path !== undefined) {
    const exact = m.path;
    path = (p) => p === exact;
  } else if (m.pathRegex !== undefined) {
    const re = new RegExp(`^(?:${m.pathRegex})$`);
    path = (p) => re.test(p);
  }
  const methods = m.methods && m.methods.length > 0 ? new Set(m.methods) : null;
  const headers = Object.entries(m.headers ?? {}).map(([name, spec]) => [name.toLowerCase(), headerTest(spec)] as const);
  return {
    value,
    matches(method, target, reqHeaders) {
      if (methods !== null && !methods.has(method)) return false;
      if (host !== null && !host(target)) return false;
      if (path !== null && !path(target.path)) return false;
      for (let i = 0; i < headers.length; i++) {
        const [name, test] = headers[i] as (typeof headers)[number];
        if (!test(reqHeaders[name])) return false;
      }
      return true;
    },
  };
}

export class Router<T> {
  constructor(private readonly matchers: ReadonlyArray<Matcher<T>>) {}

  match(method: string, target: RequestTarget, headers: Record<string, string | string[] | undefined>): T | null {
    const ms = this.matchers;
    for (let i = 0; i < ms.length; i++) {
      const m = ms[i] as Matcher<T>;
      if (m.matches(method, target, headers)) return m.value;
    }
    return null;
  }
}

/**
 * Splits a request target into host and path. Handles origin-form ("/p?q", host from
 * the Host header) and absolute-form ("http://h:1/p?q", as sent by HTTP_PROXY clients).
 * Returns null for targets a plain HTTP proxy cannot serve.
 */
export function parseTarget(url: string, hostHeader: string | undefined): RequestTarget | null {
  let authority = hostHeader ?? '';
  let rest = url;
  if (url.charCodeAt(0) !== 47 /* / */) {
    if (!url.startsWith('http://') && !url.startsWith('HTTP://')) return null;
    const slash = url.indexOf('/', 7);
    const q = url.indexOf('?', 7);
    const end = slash === -1 ? (q === -1 ? url.length : q) : q !== -1 && q < slash ? q : slash;
    authority = url.slice(7, end);
    rest = end === url.length ? '/' : url[end] === '?' ? `/${url.slice(end)}` : url.slice(end);
  }
  const qi = rest.indexOf('?');
  const path = qi === -1 ? rest : rest.slice(0, qi);
  const query = qi === -1 ? '' : rest.slice(qi);
  return { host: stripPort(authority).toLowerCase(), authority, path, query };
}

function stripPort(authority: string): string {
  if (authority.charCodeAt(0) === 91 /* [ */) {
    const close = authority.indexOf(']');
    return close === -1 ? authority : authority.slice(1, close);
  }
  const colon = authority.lastIndexOf(':');
  return colon === -1 ? authority : authority.slice(0, colon);
}

/** What resolveTarget reads off the request (an IncomingMessage fits). */
export interface TargetSource {
  readonly url?: string | undefined;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly rawHeaders: readonly string[];
}

/**
 * The one routing view of a request, shared by the HTTP handler and the upgrade
 * handshakes: the edge checks (header count, target size, duplicate Host, a Via loop),
 * then the target parsed and its path normalized (normalize-path.ts). A refusal comes
 * back as the ProxyError to answer with; the connection is then closed.
 */
export function resolveTarget(req: TargetSource, http: HttpConfig): RequestTarget | ProxyError {
  const url = req.url ?? '/';
  if (url.length > http.maxTargetBytes) return new ProxyError('OUTRIGGER_TARGET_TOO_LONG', `the request target is ${url.length} bytes, more than http.maxTargetBytes (${http.maxTargetBytes})`);
  const raw = req.rawHeaders;
  if (raw.length / 2 > http.maxHeaders) return new ProxyError('OUTRIGGER_HEADERS_TOO_LARGE', `the request has ${raw.length / 2} header lines, more than http.maxHeaders (${http.maxHeaders})`);
  let hosts = 0;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    if (name.length === 4 && name.toLowerCase() === 'host') hosts++;
  }
  if (hosts > 1) return new ProxyError('OUTRIGGER_BAD_REQUEST', 'the request has more than one Host header');
  const via = req.headers.via;
  if (via !== undefined && viaHas(Array.isArray(via) ? via.join(',') : via, http.via)) {
    return new ProxyError('OUTRIGGER_LOOP_DETECTED', `the request's Via already names ${JSON.stringify(http.via)}: it has looped back to this proxy`);
  }
  const hostHeader = req.headers.host as string | undefined;
  const target = parseTarget(url, hostHeader);
  if (target === null) return new ProxyError('OUTRIGGER_BAD_REQUEST', 'the request target must be a path or an http:// URL');
  if (hostHeader !== undefined && target.authority !== hostHeader && !sameAuthority(target.authority, hostHeader)) {
    return new ProxyError('OUTRIGGER_BAD_REQUEST', 'the authority of the absolute-form target differs from the Host header');
  }
  const n = normalizePath(target.path, http);
  if (n.ok) {
    target.path = n.path;
    return target;
  }
  if (n.redirect !== null) return new ProxyError('OUTRIGGER_REDIRECT', undefined, undefined, n.redirect + target.query);
  return new ProxyError('OUTRIGGER_BAD_REQUEST', `the request target is refused: ${n.reason}`);
}

/** Authorities compared as RFC 9110 4.2.3 does: case-insensitive, the default port optional. */
function sameAuthority(a: string, b: string): boolean {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  return x === y || (x.endsWith(':80') ? x.slice(0, -3) : x) === (y.endsWith(':80') ? y.slice(0, -3) : y);
}

/** Whether a Via value lists `pseudonym` as a received-by ("1.1 outrigger, 1.0 fred"). */
function viaHas(value: string, pseudonym: string): boolean {
  for (const part of value.split(',')) {
    const p = part.trim();
    const sp = p.indexOf(' ');
    if (sp === -1) continue;
    const rest = p.slice(sp + 1).trimStart();
    const end = rest.indexOf(' ');
    if ((end === -1 ? rest : rest.slice(0, end)) === pseudonym) return true;
  }
  return false;
}

/**
 * The path sent upstream: rewritePrefix applied to the normalized path. Null when the
 * rewritten path would leave the rewritten prefix.
 */
export function upstreamPathOf(route: { readonly rewriteFrom: string | null; readonly rewriteTo: string | null }, target: RequestTarget): string | null {
  let path = target.path;
  if (route.rewriteFrom !== null && route.rewriteTo !== null && path.startsWith(route.rewriteFrom)) {
    const p = rewritePath(path, route.rewriteFrom, route.rewriteTo);
    if (p === null) return null;
    path = p;
  }
  return path + target.query;
}
