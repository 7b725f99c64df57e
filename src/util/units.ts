// Parsers for the human-friendly units the config file accepts. They are pure and
// run only at config load, never on the request path.

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const DURATION_RE = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1000,
  mb: 1000 ** 2,
  gb: 1000 ** 3,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
};
const SIZE_RE = /^(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|kib|mib|gib)$/i;

/** Milliseconds from "250ms", "2s", "1.5m", "1h", or a plain number of milliseconds. */
export function parseDuration(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isFinite(input) && input >= 0 ? input : undefined;
  const m = DURATION_RE.exec(input.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (DURATION_UNITS[m[2] as string] as number));
}

/** Bytes from "64KiB", "1MiB", "512B", "10kb", or a plain number of bytes. */
export function parseSize(input: string | number): number | undefined {
  if (typeof input === 'number') return Number.isInteger(input) && input >= 0 ? input : undefined;
  const m = SIZE_RE.exec(input.trim());
  if (!m) return undefined;
  return Math.floor(Number(m[1]) * (SIZE_UNITS[(m[2] as string).toLowerCase()] as number));
}

/** host:port listen address; host may be an IPv4 address, a bracketed IPv6 address or a name. */
export function parseListen(input: string): { host: string; port: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(input.trim());
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  const host = (m[1] as string).replace(/^\[|\]$/g, '');
  return { host, port };
}
