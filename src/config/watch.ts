// Notices config changes the way Kubernetes makes them. A mounted ConfigMap is updated
// by swapping the `..data` symlink in the directory, never by writing the file, so we
// watch the directory (not the file) and also poll the content hash in case an event
// is missed (network filesystems, editors that rename).
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { watch, type FSWatcher } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';

export class ConfigWatcher {
  private watcher: FSWatcher | null = null;
  private poller: NodeJS.Timeout | null = null;
  private debounce: NodeJS.Timeout | null = null;
  private lastHash: string | null;
  private closed = false;

  /**
   * `loadedHash` is the hash of the config the caller loaded. Starting from it, and not
   * from a first read of our own, a change made between that load and our first read is
   * still seen as a change.
   */
  constructor(
    private readonly path: string,
    pollInterval: number,
    private readonly onChange: () => void,
    private readonly log: Logger,
    loadedHash: string,
  ) {
    this.lastHash = loadedHash;
    try {
      this.watcher = watch(dirname(path), { persistent: false }, () => this.schedule());
      this.watcher.on('error', (err) => {
        this.log.warn({ err: String(err), path }, 'config directory watch failed; relying on polling');
        this.watcher?.close();
        this.watcher = null;
      });
    } catch (err) {
      this.log.warn({ err: String(err), path }, 'cannot watch the config directory; relying on polling');
    }
    if (pollInterval > 0) {
      this.poller = setInterval(() => void this.check(), pollInterval);
      this.poller.unref();
    }
  }

  /**
   * The caller just loaded (or rejected) the file with this hash, on a signal or POST
   * /reload: the next poll must not see it as a change and reload (or log) it twice.
   */
  acknowledge(hash: string | null): void {
    this.lastHash = hash;
  }

  close(): void {
    this.closed = true;
    this.watcher?.close();
    if (this.poller) clearInterval(this.poller);
    if (this.debounce) clearTimeout(this.debounce);
  }

  /** Several events arrive per swap; look once they settle. */
  private schedule(): void {
    if (this.closed) return;
    if (this.debounce) clearTimeout(this.debounce);
    this.debounce = setTimeout(() => void this.check(), 100);
    this.debounce.unref();
  }

  private async hash(): Promise<string | null> {
    try {
      // Hashed as decoded text, the way loadConfigText hashes it, so the two compare.
      return createHash('sha256').update(await readFile(this.path, 'utf8')).digest('hex');
    } catch {
      return null;
    }
  }

  private async check(): Promise<void> {
    if (this.closed) return;
    const h = await this.hash();
    if (h === this.lastHash) return;
    this.lastHash = h;
    // A missing file mid-swap is reported by the reload itself, which keeps the old config.
    this.onChange();
  }
}
