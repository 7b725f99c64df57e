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
  /** What the index may use: an exact host (no port, no wildcard), and the path rule. */
  readonly key?: { readonly host: string | null; readonly prefix: string | null; readonly exact: string | null };
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
  const h = m.host === undefined || m.host === '*' ? null : m.host.toLowerCase();
  const indexHost = h !== null && !h.startsWith('*.') && !/:\d+$/.test(h) ? h : null;
  return {
    value,
    // A route with a wildcard or port host is indexed as "any host" and judged by matches().
    key: {
      host: h === null ? null : indexHost ?? '\u0000any',
      prefix: m.pathPrefix !== undefined ? m.pathPrefix : m.path === undefined && m.pathRegex === undefined ? '/' : null,
      exact: m.path ?? null,
    },
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

/** Below this many routes a plain scan is cheaper than the index. */
const INDEX_FROM = 16;

/**
 * First match wins, in config order. With many routes the candidates come from an index,
 * so the cost stays flat as the config grows: routes by exact host (the rest, any host,
 * apart), then by path: exact paths in a map, prefixes in a trie of whole segments (the
 * same segment rule as pathPrefix), regex and header-only routes in a list checked by
 * their matcher. Each candidate list is in config order; the lowest index that matches
 * wins, which is what the linear scan would return (a test compares the two).
 */
export class Router<T> {
  private readonly index: Index | null;
  /** One reusable query record: matching allocates nothing per request (it is synchronous). */
  private readonly query: Query<T>;

  constructor(private readonly matchers: ReadonlyArray<Matcher<T>>) {
    this.query = { matchers, method: '', target: null, headers: null };
    this.index = matchers.length >= INDEX_FROM && matchers.every((m) => m.key !== undefined) ? buildIndex(matchers) : null;
  }

  match(method: string, target: RequestTarget, headers: Record<string, string | string[] | undefined>): T | null {
    const ms = this.matchers;
    if (this.index === null) {
      for (let i = 0; i < ms.length; i++) {
        const m = ms[i] as Matcher<T>;
        if (m.matches(method, target, headers)) return m.value;
      }
      return null;
    }
    const q: Query<T> = this.query;
    q.method = method;
    q.target = target;
    q.headers = headers;
    const byHost = this.index.hosts.get(target.host);
    let best = byHost === undefined ? Infinity : byHost.first(q, Infinity);
    best = this.index.any.first(q, best);
    q.target = null;
    q.headers = null;
    return best === Infinity ? null : (ms[best] as Matcher<T>).value;
  }
}

interface Query<T> {
  readonly matchers: ReadonlyArray<Matcher<T>>;
  method: string;
  target: RequestTarget | null;
  headers: Record<string, string | string[] | undefined> | null;
}

interface Index {
  hosts: Map<string, PathIndex>;
  any: PathIndex;
}

function buildIndex<T>(matchers: ReadonlyArray<Matcher<T>>): Index {
  const hosts = new Map<string, PathIndex>();
  const any = new PathIndex();
  matchers.forEach((m, i) => {
    const key = m.key as NonNullable<Matcher<T>['key']>;
    let pi = any;
    if (key.host !== null && key.host !== '\u0000any') {
      pi = hosts.get(key.host) ?? new PathIndex();
      hosts.set(key.host, pi);
    }
    pi.add(i, key.prefix, key.exact);
  });
  return { hosts, any };
}

class TrieNode {
  readonly children = new Map<string, TrieNode>();
  /** Routes whose prefix ends at this node, in config order. */
  readonly here: number[] = [];
}

/** The routes of one host key, by path rule. */
class PathIndex {
  private readonly exact = new Map<string, number[]>();
  private readonly root = new TrieNode();
  /** Regex and other routes the index cannot place: judged by their matcher, in order. */
  private readonly other: number[] = [];

  add(i: number, prefix: string | null, exact: string | null): void {
    if (exact !== null) {
      const list = this.exact.get(exact) ?? [];
      list.push(i);
      this.exact.set(exact, list);
    } else if (prefix !== null) {
      let node = this.root;
      for (const seg of segments(prefix.length > 1 && prefix.endsWith('/') ? prefix.slice(0, -1) : prefix)) {
        let next = node.children.get(seg);
        if (next === undefined) node.children.set(seg, (next = new TrieNode()));
        node = next;
      }
      node.here.push(i);
    } else this.other.push(i);
  }

  /** The lowest route index below `best` whose matcher accepts the request, or `best`. */
  first<T>(q: Query<T>, best: number): number {
    const path = (q.target as RequestTarget).path;
    best = firstIn(this.exact.get(path), q, best);
    best = firstIn(this.other, q, best);
    let node: TrieNode | undefined = this.root;
    best = firstIn(node.here, q, best);
    // Walk the path's segments; every node on the way holds prefixes of this path.
    let start = 1;
    while (node !== undefined && start <= path.length) {
      let end = path.indexOf('/', start);
      if (end === -1) end = path.length;
      node = node.children.get(path.slice(start, end));
      if (node !== undefined && node.here.length > 0) best = firstIn(node.here, q, best);
      start = end + 1;
    }
    return best;
  }
}

function firstIn<T>(list: readonly number[] | undefined, q: Query<T>, best: number): number {
  if (list === undefined) return best;
  for (let k = 0; k < list.length; k++) {
    const i = list[k] as number;
    if (i >= best) return best;
    if ((q.matchers[i] as Matcher<T>).matches(q.method, q.target as RequestTarget, q.headers as Record<string, string | string[] | undefined>)) return i;
  }
  return best;
}

/** "/a/b" → ["a", "b"]; "/" → []. */
function segments(prefix: string): string[] {
  return prefix === '/' ? [] : prefix.slice(1).split('/');
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
