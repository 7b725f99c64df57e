import { describe, expect, it } from 'vitest';
import { normalizePath, rewritePath, type PathOptions } from '../../src/proxy/normalize-path.js';

const DEFAULTS: PathOptions = { normalizePath: true, mergeSlashes: true, escapedSlashes: 'reject' };

// [target path, normalized path, or 400 when refused]
const TABLE: Array<[string, string | 400]> = [
  ['/', '/'],
  ['/pay', '/pay'],
  ['/pay/', '/pay/'],
  ['/a/b/c', '/a/b/c'],
  ['/x/../pay', '/pay'],
  ['/x/%2e%2e/pay', '/pay'],
  ['/x/%2E%2E/pay', '/pay'],
  ['/x/.%2e/pay', '/pay'],
  ['/x/%2e./pay', '/pay'],
  ['/./pay', '/pay'],
  ['/%2e/pay', '/pay'],
  ['//pay', '/pay'],
  ['///pay//', '/pay/'],
  ['/a//b', '/a/b'],
  ['/%61dmin', '/admin'],
  ['/%70%61%79', '/pay'],
  ['/x/..;a=b/pay', '/pay'],
  ['/x/.;a=b/pay', '/x/pay'],
  ['/x/%2e%2e;jsessionid=1/pay', '/pay'],
  ['/pay;v=1', '/pay;v=1'],
  ['/a/b/..', '/a/'],
  ['/a/b/.', '/a/b/'],
  ['/a/.', '/a/'],
  ['/.', '/'],
  ['/a/..', '/'],
  ['/a/b/../../c', '/c'],
  ['/a/./b/./c', '/a/b/c'],
  ['/a%7e/b', '/a~/b'],
  ['/%7E%5f%2D', '/~_-'],
  ['/a%20b', '/a%20b'],
  ['/a%3fb', '/a%3Fb'],
  ['/caf%c3%a9', '/caf%C3%A9'],
  ['/a..b/c', '/a..b/c'],
  ['/...', '/...'],
  ['/a/.../b', '/a/.../b'],
  ['/.well-known/x', '/.well-known/x'],
  ['/..', 400],
  ['/../pay', 400],
  ['/%2e%2e/pay', 400],
  ['/a/../../pay', 400],
  ['/a/..;x/../pay', 400],
  ['/a%2Fb', 400],
  ['/a%2fb', 400],
  ['/a%5Cb', 400],
  ['/a%5cb', 400],
  ['/a\\b', 400],
  ['/a\\..\\pay', 400],
  ['/a\u0000b', 400],
  ['/a%00b', 400],
  ['/a#frag', 400],
  ['/a%zzb', 400],
  ['/a%2', 400],
  ['/a%', 400],
];

describe('normalizePath', () => {
  it('has a table of at least 40 targets', () => {
    expect(TABLE.length).toBeGreaterThanOrEqual(40);
  });

  it.each(TABLE)('%s → %s', (input, want) => {
    const r = normalizePath(input, DEFAULTS);
    if (want === 400) expect(r.ok).toBe(false);
    else expect(r).toEqual({ ok: true, path: want });
  });

  it('returns the same string, unallocated, when there is nothing to do', () => {
    const p = '/api/v1/users/42';
    const r = normalizePath(p, DEFAULTS);
    expect(r.ok && r.path).toBe(p);
  });

  it('escapedSlashes: keep keeps %2F upper-cased, unescape turns it into a separator, redirect names the target', () => {
    expect(normalizePath('/a%2fb', { ...DEFAULTS, escapedSlashes: 'keep' })).toEqual({ ok: true, path: '/a%2Fb' });
    expect(normalizePath('/a%5cb', { ...DEFAULTS, escapedSlashes: 'keep' })).toEqual({ ok: true, path: '/a%5Cb' });
    // keep: an escaped slash is not a separator, so it cannot form a dot segment
    expect(normalizePath('/x/..%2fpay', { ...DEFAULTS, escapedSlashes: 'keep' })).toEqual({ ok: true, path: '/x/..%2Fpay' });
    expect(normalizePath('/a%2Fb', { ...DEFAULTS, escapedSlashes: 'unescape' })).toEqual({ ok: true, path: '/a/b' });
    expect(normalizePath('/x%2F..%2Fpay', { ...DEFAULTS, escapedSlashes: 'unescape' })).toEqual({ ok: true, path: '/pay' });
    expect(normalizePath('/x%5C..%5Cpay', { ...DEFAULTS, escapedSlashes: 'unescape' })).toEqual({ ok: true, path: '/pay' });
    const red = normalizePath('/x%2F..%2Fpay', { ...DEFAULTS, escapedSlashes: 'redirect' });
    expect(red).toEqual({ ok: false, redirect: '/pay', reason: expect.any(String) as string });
    expect(normalizePath('/plain', { ...DEFAULTS, escapedSlashes: 'redirect' })).toEqual({ ok: true, path: '/plain' });
  });

  it('mergeSlashes: false keeps empty segments', () => {
    expect(normalizePath('//pay', { ...DEFAULTS, mergeSlashes: false })).toEqual({ ok: true, path: '//pay' });
    expect(normalizePath('/a//../b', { ...DEFAULTS, mergeSlashes: false })).toEqual({ ok: true, path: '/a/b' });
  });

  it('normalizePath: false leaves dots and encodings, but still refuses backslash, NUL, fragments', () => {
    const off: PathOptions = { normalizePath: false, mergeSlashes: false, escapedSlashes: 'keep' };
    expect(normalizePath('/x/../pay', off)).toEqual({ ok: true, path: '/x/../pay' });
    expect(normalizePath('/%61dmin', off)).toEqual({ ok: true, path: '/%61dmin' });
    expect(normalizePath('/a\\b', off).ok).toBe(false);
    expect(normalizePath('/a%00', off).ok).toBe(false);
    expect(normalizePath('/a#b', off).ok).toBe(false);
  });
});

describe('rewritePath', () => {
  it('replaces the prefix and never leaves the rewritten one', () => {
    expect(rewritePath('/svc-a/x', '/svc-a', '/internal/svc-a')).toBe('/internal/svc-a/x');
    expect(rewritePath('/svc-a', '/svc-a', '/')).toBe('/');
    expect(rewritePath('/svc-a/x', '/svc-a', '/')).toBe('/x');
    expect(rewritePath('/svc-a/../../secret', '/svc-a', '/internal/svc-a')).toBeNull();
    expect(rewritePath('/svc-a/b/../c', '/svc-a', '/internal')).toBe('/internal/c');
  });
});
