import { describe, expect, it } from 'vitest';
import { parseDuration, parseListen, parseSize } from '../../src/util/units.js';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['2s', 2000],
    ['1m', 60_000],
    ['1h', 3_600_000],
    ['1.5s', 1500],
    ['0.5m', 30_000],
    ['0ms', 0],
    [' 3s ', 3000],
    [0, 0],
    [1500, 1500],
  ] as const)('%j -> %d ms', (input, ms) => {
    expect(parseDuration(input)).toBe(ms);
  });

  it.each(['fast', '', '10', '5 s', '-1s', '1d', '1S', 's', '1.s', 'Infinity'])('rejects %j', (input) => {
    expect(parseDuration(input)).toBeUndefined();
  });

  it.each([-1, Number.NaN, Number.POSITIVE_INFINITY])('rejects the number %d', (n) => {
    expect(parseDuration(n)).toBeUndefined();
  });
});

describe('parseSize', () => {
  it.each([
    ['64KiB', 65536],
    ['1MiB', 1048576],
    ['1GiB', 1024 ** 3],
    ['512B', 512],
    ['10kb', 10_000],
    ['2MB', 2_000_000],
    ['1.5KiB', 1536],
    ['16 KiB', 16384],
    [0, 0],
    [4096, 4096],
  ] as const)('%j -> %d bytes', (input, bytes) => {
    expect(parseSize(input)).toBe(bytes);
  });

  it.each(['big', '', '64', '64K', '-1KiB', '1TiB', 'KiB'])('rejects %j', (input) => {
    expect(parseSize(input)).toBeUndefined();
  });

  it.each([-1, 1.5, Number.NaN])('rejects the number %d', (n) => {
    expect(parseSize(n)).toBeUndefined();
  });
});

describe('parseListen', () => {
  it('parses IPv4, names and bracketed IPv6', () => {
    expect(parseListen('0.0.0.0:15001')).toEqual({ host: '0.0.0.0', port: 15001 });
    expect(parseListen('localhost:80')).toEqual({ host: 'localhost', port: 80 });
    expect(parseListen('[::1]:15000')).toEqual({ host: '::1', port: 15000 });
    expect(parseListen('127.0.0.1:0')).toEqual({ host: '127.0.0.1', port: 0 });
  });

  it.each(['15001', ':15001', '0.0.0.0', '0.0.0.0:99999', '::1:80', 'host:port', 'a b:1'])('rejects %j', (input) => {
    expect(parseListen(input)).toBeUndefined();
  });
});
