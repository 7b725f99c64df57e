// Request-target path normalization, done once before routing (router.ts resolveTarget),
// so routing, rewritePrefix, the upstream request, the access log and the upgrade
// handshakes all see one path. Follows Envoy's normalize_path (RFC 3986 section 6),
// merge_slashes and path_with_escaped_slashes_action. A hand-written scanner: no regex,
// and a path with nothing to normalize is returned as is, without allocating.

export type EscapedSlashes = 'keep' | 'reject' | 'unescape' | 'redirect';

export interface PathOptions {
  readonly normalizePath: boolean;
  readonly mergeSlashes: boolean;
  readonly escapedSlashes: EscapedSlashes;
}

/** Why a path was refused; `redirect` carries the path to send the client to instead. */
export type PathResult =
  | { readonly ok: true; readonly path: string }
  | { readonly ok: false; readonly redirect: string | null; readonly reason: string };

const HEX = '0123456789ABCDEF';

function hexValue(c: number): number {
  if (c >= 48 && c <= 57) return c - 48; // 0-9
  if (c >= 65 && c <= 70) return c - 55; // A-F
  if (c >= 97 && c <= 102) return c - 87; // a-f
  return -1;
}

/** RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~". */
function unreserved(c: number): boolean {
  return (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 45 || c === 46 || c === 95 || c === 126;
}

function refuse(reason: string): PathResult {
  return { ok: false, redirect: null, reason };
}

/**
 * Normalizes the path part of a request target (no query). The checks that guard against
 * path confusion (raw backslash, NUL, a fragment) apply whatever the options say.
 */
export function normalizePath(path: string, opts: PathOptions): PathResult {
  // One scan: refuse what is never valid and learn whether there is anything to do.
  let work = false;
  const n = path.length;
  for (let i = 0; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c === 92 /* \ */) return refuse('a backslash in the request target');
    if (c === 0) return refuse('a NUL in the request target');
    if (c === 35 /* # */) return refuse('a fragment ("#") in the request target');
    if (c === 37 /* % */) work = true;
    else if (c === 47 /* / */ && i + 1 < n) {
      const d = path.charCodeAt(i + 1);
      if (d === 47 || d === 46 /* . */) work = true;
    }
  }
  if (!work) return { ok: true, path };

  // Pass 1: percent-decoding. Unreserved characters are decoded (when normalizing),
  // escaped slashes follow `escapedSlashes`, everything else is kept, upper-cased.
  let decoded = '';
  let sawEscapedSlash = false;
  for (let i = 0; i < n; i++) {
    const c = path.charCodeAt(i);
    if (c !== 37) {
      decoded += path[i];
      continue;
    }
    const hi = i + 2 < n ? hexValue(path.charCodeAt(i + 1)) : -1;
    const lo = hi === -1 ? -1 : hexValue(path.charCodeAt(i + 2));
    if (lo === -1) return refuse('a malformed percent-encoding in the request target');
    const byte = hi * 16 + lo;
    i += 2;
    if (byte === 0) return refuse('a NUL (%00) in the request target');
    if (byte === 0x2f || byte === 0x5c) {
      sawEscapedSlash = true;
      if (opts.escapedSlashes === 'reject') return refuse('an escaped slash (%2F or %5C) in the request target');
      if (opts.escapedSlashes === 'keep') decoded += byte === 0x2f ? '%2F' : '%5C';
      else decoded += '/'; // unescape, redirect: %5C reads as a separator, as Envoy reads a backslash
      continue;
    }
    if (opts.normalizePath && unreserved(byte)) decoded += String.fromCharCode(byte);
    else decoded += opts.normalizePath ? `%${HEX[hi]}${HEX[lo]}` : path.slice(i - 2, i + 1);
  }

  // Pass 2: segments. Empty segments merge (except a trailing one: "/a/" stays "/a/"),
  // dot segments go; a ";params" part does not hide a dot segment ("..;a=b" is "..").
  const out: string[] = [];
  const m = decoded.length;
  let start = 1; // decoded starts with "/" (origin-form; router.ts guarantees it)
  let trailing = false;
  while (start <= m) {
    let end = decoded.indexOf('/', start);
    if (end === -1) end = m;
    const seg = decoded.slice(start, end);
    const last = end === m;
    start = end + 1;
    if (opts.normalizePath) {
      const semi = seg.indexOf(';');
      const bare = semi === -1 ? seg : seg.slice(0, semi);
      if (bare === '.') {
        trailing = last;
        continue;
      }
      if (bare === '..') {
        if (out.length === 0) return refuse('the request target climbs above the root ("..")');
        out.pop();
        trailing = last;
        continue;
      }
    }
    if (seg === '' && opts.mergeSlashes) {
      trailing = last;
      continue;
    }
    out.push(seg);
    trailing = false;
  }
  let result = `/${out.join('/')}`;
  if (trailing && out.length > 0) result += '/';
  if (sawEscapedSlash && opts.escapedSlashes === 'redirect') return { ok: false, redirect: result, reason: 'escaped slashes in the request target' };
  return { ok: true, path: result };
}

/**
 * rewritePrefix: replaces `from` (a prefix the path matched) with `to`. Returns null when
 * the rest would climb out of the rewritten prefix (possible only with normalizePath off).
 */
export function rewritePath(path: string, from: string, to: string): string | null {
  let rest = path.slice(from.length);
  if (rest.indexOf('/.') !== -1) {
    const r = normalizePath(rest.charCodeAt(0) === 47 ? rest : `/${rest}`, { normalizePath: true, mergeSlashes: false, escapedSlashes: 'keep' });
    if (!r.ok) return null;
    rest = r.path;
  }
  const out = to.endsWith('/') && rest.startsWith('/') ? to + rest.slice(1) : to + rest;
  return out === '' ? '/' : out;
}
