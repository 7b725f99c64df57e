// Types for the undici modules the proxy loads directly (src/proxy/upstream.ts, src/proxy/headers.ts).
declare module 'undici/lib/dispatcher/pool.js' {
  import type { Pool } from 'undici';
  const PoolClass: typeof Pool;
  export default PoolClass;
}

declare module 'undici/lib/core/util.js' {
  /** A header name in lower case; well-known names come back as undici's interned constants. */
  export function headerNameToString(value: string | Buffer): string;
}
