// What the admin and status listeners read of the running proxy: a small registry shape,
// not the proxy's internals. app.ts hands over its proxy state, which has this shape; the
// admin code never sees an Exchange, a pool or a policy stack.
import type { BreakerSnapshot } from '../policies/breaker.js';
import type { Journal } from '../deadletter/journal.js';

/** A breaker as the admin endpoints read and act on it. */
export interface AdminBreaker {
  readonly name: string;
  snapshot(): BreakerSnapshot;
  isolate(): void;
  reset(): boolean;
}

/** The loaded config, as the admin endpoints show it. */
export interface AdminRuntime {
  readonly breakers: ReadonlyMap<string, { readonly value: AdminBreaker }>;
  readonly routes: ReadonlyArray<{ readonly config: { readonly critical: boolean }; readonly breaker: { readonly name: string } | null }>;
  readonly loaded: { readonly path: string; readonly hash: string; readonly loadedAt: Date };
  /** The effective config, for GET /config. */
  readonly config: unknown;
  breaker(name: string): AdminBreaker | undefined;
  /** Dead-letter journals by route (routes with deadLetter.enabled). */
  readonly journals?: ReadonlyMap<string, Journal>;
}

export interface StateRegistry {
  /** The runtime built from the config now in force (swapped on reload). */
  readonly runtime: AdminRuntime;
  readonly draining: boolean;
  readonly log: { warn(obj: object, msg: string): void };
}
