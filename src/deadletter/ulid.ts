// A monotonic ULID generator (https://github.com/ulid/spec): 48 bits of milliseconds and
// 80 random bits, Crockford base32, 26 characters, so ids sort by time as strings. Within
// one millisecond (or if the clock steps back) the random part is incremented instead of
// redrawn, so ids made by one process are strictly increasing.
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export class UlidFactory {
  private lastTime = -1;
  /** The 80 random bits as 16 base32 digits (5 bits each). */
  private readonly rand = new Uint8Array(16);

  constructor(private readonly now: () => number = Date.now) {}

  next(): string {
    let t = this.now();
    if (t <= this.lastTime) {
      t = this.lastTime;
      this.increment();
    } else {
      this.lastTime = t;
      const bytes = randomBytes(16);
      for (let i = 0; i < 16; i++) this.rand[i] = (bytes[i] as number) & 31;
    }
    let time = '';
    for (let i = 0; i < 10; i++) {
      time = ALPHABET.charAt(t % 32) + time;
      t = Math.floor(t / 32);
    }
    let out = time;
    for (let i = 0; i < 16; i++) out += ALPHABET.charAt(this.rand[i] as number);
    return out;
  }

  private increment(): void {
    for (let i = 15; i >= 0; i--) {
      if ((this.rand[i] as number) < 31) {
        this.rand[i] = (this.rand[i] as number) + 1;
        return;
      }
      this.rand[i] = 0;
    }
    // 2^80 ids in one millisecond: move to the next one.
    this.lastTime++;
  }
}

/** The millisecond timestamp of a ULID, or NaN when it is not one. */
export function ulidTime(id: string): number {
  if (!/^[0-9A-HJKMNP-TV-Z]{26}$/.test(id)) return NaN;
  let t = 0;
  for (let i = 0; i < 10; i++) t = t * 32 + ALPHABET.indexOf(id.charAt(i));
  return t;
}
