// An upstream: its endpoints, each with one keep-alive undici Pool, picked round-robin.
import type { Pool as PoolType } from 'undici';
// undici's index also loads fetch, its WebSocket client and caches: about 9 MB of RSS a
// proxy never uses. Pool is all we need, so we load its module alone. The test suite
// exercises it, so an undici release that moves it fails CI rather than production.
import Pool from 'undici/lib/dispatcher/pool.js';
import type { UpstreamConfig } from '../config/schema.js';
import { H2Client } from './h2-session.js';

export interface Endpoint {
  /** Origin, e.g. http://10.0.0.1:8080 */
  readonly origin: string;
  /** Authority for the Host header, e.g. 10.0.0.1:8080 */
  readonly authority: string;
  readonly pool: PoolType;
  /** The HTTP/2 session of an h2c or h2 upstream; null for http1. */
  readonly h2: H2Client | null;
}

export class Upstream {
  readonly endpoints: Endpoint[];
  private next = 0;

  constructor(
    readonly name: string,
    readonly settings: UpstreamConfig,
  ) {
    this.endpoints = settings.endpoints.map((ep) => {
      const url = new URL(ep);
      return {
        origin: url.origin,
        authority: url.host,
        pool: new Pool(url.origin, {
          connections: settings.maxConnections,
          keepAliveTimeout: settings.keepAliveTimeout,
          // A pooled socket is never kept past the configured idle time, whatever the
          // server's keep-alive header says, so it expires before the server closes it.
          keepAliveMaxTimeout: settings.keepAliveTimeout,
          connect: { timeout: settings.connectTimeout },
          // The route deadline and per-try timeout bound the header phase instead.
          headersTimeout: 0,
          pipelining: 1,
        }),
        h2: settings.protocol === 'http1' ? null : new H2Client(url.origin, settings),
      };
    });
  }

  /** Index of the endpoint for a first attempt. */
  pick(): number {
    const i = this.next;
    this.next = i + 1 >= this.endpoints.length ? 0 : i + 1;
    return i;
  }

  /** A retry goes to the next endpoint, so it never hits the same one twice in a row. */
  after(i: number): number {
    return i + 1 >= this.endpoints.length ? 0 : i + 1;
  }

  /** Closes the pools once their in-flight requests are done. */
  async close(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => Promise.all([e.pool.close(), e.h2?.close()])));
  }

  async destroy(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => Promise.all([e.pool.destroy(), e.h2?.destroy()])));
  }
}
