// The /metrics text, written here instead of by prom-client's Registry#metrics(): at 1,000
// routes that call took ~400 ms for 134k samples in one synchronous stretch, most of it
// label hashing and label formatting redone for every sample of every scrape. Here each
// piece of text is rendered once and kept with what it was rendered from; a scrape re-renders
// only the pieces whose numbers moved, copies the rest, and goes out in chunks with the event
// loop let go in between, so a scrape no longer stalls the proxy.
//
// The text is byte for byte what Registry#metrics() prints for the same state (Prometheus
// format 0.0.4: HELP and TYPE once per family, a blank line between families, prom-client's
// number formatting); test/admin/exposition.test.ts holds it to that.
import { Counter, Gauge, Registry, type Metric } from 'prom-client';

/**
 * A family rendered by its owner rather than by prom-client (the per-route families, whose
 * values are plain numbers). It stays registered, with a get() for Registry#metrics() and
 * getMetricsAsArray(); the scrape reads pieces() instead.
 */
export interface TextFamily {
  readonly name: string;
  readonly help: string;
  readonly type: string;
  /**
   * The sample lines, each "\n<name>{<labels>} <value>", in batches of bounded work: the
   * scrape may let the event loop run between two batches.
   */
  pieces(): Iterable<readonly Buffer[]>;
}

/** Text in a row: a family's header, or a batch of its sample lines. */
type Batch = ReadonlyArray<Buffer | string>;

/** Samples per piece of a prom-client family, kept and compared as one: well under SLICE_MS to render. */
const VALUES_PER_PIECE = 500;
/** Bytes gathered before they are written and the event loop is let go. */
export const CHUNK_BYTES = 128 * 1024;
/**
 * ... or sooner, after this long (ms): a first scrape renders everything, before the JIT has
 * compiled it, and a loaded machine is slower still.
 */
const SLICE_MS = 5;

type Labels = Record<string, string | number | undefined>;
interface Value {
  value: number;
  labels: Labels;
}

function isTextFamily(m: unknown): m is TextFamily {
  return typeof (m as Partial<TextFamily>).pieces === 'function';
}

/** A label value as the exposition format escapes it: backslash, line feed, double quote. */
export function escapeLabelValue(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** A sample value as prom-client prints it (its spelling of NaN included). */
export function formatValue(v: number): string {
  if (Number.isFinite(v)) return `${v}`;
  return Number.isNaN(v) ? 'Nan' : v < 0 ? '-Inf' : '+Inf';
}

function escapeHelp(s: string): string {
  return s.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function header(name: string, help: string, type: string): string {
  const n = escapeHelp(name);
  return `# HELP ${n} ${escapeHelp(help)}\n# TYPE ${n} ${type}`;
}

function labelText(labels: Labels): string {
  let out = '';
  for (const [k, v] of Object.entries(labels)) out += `${out === '' ? '' : ','}${k}="${typeof v === 'string' ? escapeLabelValue(v) : String(v)}"`;
  return out === '' ? '' : `{${out}}`;
}

/** A piece of a prom-client family as last rendered: the series (by labels object) and values it shows. */
interface Piece {
  labels: object[];
  values: number[];
  text: Buffer;
}
// A counter or gauge child keeps one labels object for its life (prom-client stores the
// object the child was made with), so a piece whose labels objects and values are those of
// the last scrape is the same text. Weakly keyed by the metric.
const lastPieces = new WeakMap<object, Piece[]>();

function* valuePieces(metric: object, name: string, values: readonly Value[]): Generator<Batch> {
  let pieces = lastPieces.get(metric);
  if (!pieces) lastPieces.set(metric, (pieces = []));
  let k = 0;
  for (let start = 0; start < values.length; start += VALUES_PER_PIECE, k++) {
    const end = Math.min(start + VALUES_PER_PIECE, values.length);
    let last = pieces[k];
    if (last === undefined || !samePiece(last, values, start, end)) {
      let s = '';
      const labels: object[] = [];
      const nums: number[] = [];
      for (let i = start; i < end; i++) {
        const v = values[i] as Value;
        s += `\n${name}${labelText(v.labels)} ${formatValue(v.value)}`;
        labels.push(v.labels);
        nums.push(v.value);
      }
      pieces[k] = last = { labels, values: nums, text: Buffer.from(s) };
    }
    yield [last.text];
  }
  pieces.length = k;
}

function samePiece(p: Piece, values: readonly Value[], start: number, end: number): boolean {
  if (p.labels.length !== end - start) return false;
  for (let i = start; i < end; i++) {
    const v = values[i] as Value;
    // !== on the value: a NaN is never the same, so it is simply re-rendered.
    if (p.labels[i - start] !== v.labels || p.values[i - start] !== v.value) return false;
  }
  return true;
}

/** Lazily: a piece is rendered only when the scrape asks for it. */
function* headed(head: string, batches: Iterable<Batch>): Generator<Batch> {
  yield [head];
  yield* batches;
}

/**
 * One family's text as writeExposition writes it: the HELP and TYPE lines, then its sample
 * lines in pieces (no separator before the header, no final line feed).
 */
export async function familyPieces(registry: Registry, metric: unknown): Promise<Iterable<Batch>> {
  if (isTextFamily(metric)) return headed(header(metric.name, metric.help, metric.type), metric.pieces());
  if (metric instanceof Counter || metric instanceof Gauge) {
    // Counters and gauges hold no shared labels, and Metrics sets no default labels: their
    // values print as name{labels} value.
    const got = (await (metric as Counter<string> | Gauge<string>).get()) as unknown as { name: string; help: string; type: string; values: Value[] };
    return headed(header(got.name, got.help, got.type), valuePieces(metric, escapeHelp(got.name), got.values));
  }
  // Histograms and summaries of the default metrics: few samples, prom-client's own text.
  return [[await registry.getSingleMetricAsString((metric as Metric<string> & { name: string }).name)]];
}

const letGo = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/**
 * Writes the registry's text through `write` in chunks of about CHUNK_BYTES, letting the
 * event loop run after each; `write` may return a promise (a socket's drain) to pace it.
 * Families stay whole and in registry order; a counter may move while the scrape is between
 * two chunks, which Prometheus tolerates (a scrape is not an atomic snapshot).
 */
export async function writeExposition(registry: Registry, write: (chunk: Buffer) => void | Promise<void>): Promise<void> {
  // The text below is Prometheus 0.0.4 only; an OpenMetrics registry keeps prom-client's.
  if (registry.contentType !== Registry.PROMETHEUS_CONTENT_TYPE) return void (await write(Buffer.from(await registry.metrics())));
  let buf = Buffer.allocUnsafe(CHUNK_BYTES);
  let off = 0;
  let sliceStart = performance.now();
  const flush = async (): Promise<void> => {
    if (off > 0) {
      const chunk = buf.subarray(0, off);
      buf = Buffer.allocUnsafe(CHUNK_BYTES);
      off = 0;
      await write(chunk);
    }
    await letGo();
    sliceStart = performance.now();
  };
  let first = true;
  for (const metric of registry.getMetricsAsArray() as unknown[]) {
    // A blank line between families, as prom-client puts it.
    if (!first) {
      if (off + 2 > CHUNK_BYTES) await flush();
      buf[off++] = 0x0a;
      buf[off++] = 0x0a;
    }
    first = false;
    for (const batch of await familyPieces(registry, metric)) {
      for (const piece of batch) {
        const bytes = typeof piece === 'string' ? Buffer.byteLength(piece) : piece.length;
        if (off + bytes > CHUNK_BYTES && off > 0) await flush();
        if (bytes > CHUNK_BYTES) {
          await write(typeof piece === 'string' ? Buffer.from(piece) : piece);
          await flush();
        } else if (typeof piece === 'string') {
          off += buf.write(piece, off, 'utf8');
        } else {
          buf.set(piece, off);
          off += bytes;
        }
      }
      if (performance.now() - sliceStart >= SLICE_MS) await flush();
    }
  }
  if (off + 1 > CHUNK_BYTES) await flush();
  // The last chunk, with the final line feed.
  buf[off++] = 0x0a;
  await write(buf.subarray(0, off));
}
