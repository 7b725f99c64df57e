// Closes what a test started, in reverse order, after each test.
import { afterEach } from 'vitest';

interface Closable {
  close(): Promise<void> | void;
}

/** Registers an afterEach that closes everything passed to the returned function. */
export function useCleanup(): <T extends Closable>(thing: T) => T {
  const open: Closable[] = [];
  afterEach(async () => {
    const things = open.splice(0).reverse();
    for (const t of things) await t.close();
  });
  return (thing) => {
    open.push(thing);
    return thing;
  };
}
