// Named policy presets (README, "Presets"): the built-in ones, the checks on the `presets:`
// table (built-in names, unknown names, cycles), the expansion of a `use` list, and the
// layered merge that gives a route each policy value together with where it came from.
//
// A route's layers, first to last: the built-in defaults, `defaults`, each preset of its
// `use` list (a preset's own `use` list before the preset), the route's own keys. Later
// layers override earlier ones key by key: nested objects merge, lists, `fallback`,
// `breaker.halfOpenAfter` and the breaker's trip condition are replaced whole.
import { isDeepStrictEqual } from 'node:util';
import type { z } from 'zod';
import { presetSchema, type PresetConfig } from './schema.js';

/** Where an effective value came from, as GET /config shows it. */
export type PolicySource = 'builtin' | 'defaults' | 'route' | `preset:${string}`;

// The values are chosen against the built-in defaults (timeout 15s, 2 retries on
// connect-failure, refused-stream, reset and gateway-error, 25ms..250ms full jitter,
// 5 consecutive failures, 10s open). README, "Built-in presets", says why each is what it is.
const BUILTIN_INPUT = {
  transient: {
    retry: { attempts: 3, on: ['connect-failure', 'refused-stream', 'reset'], backoff: { base: '10ms', max: '100ms', jitter: 'full' } },
  },
  critical: {
    critical: true,
    retry: { on: ['connect-failure', 'refused-stream', 'reset'] },
    breaker: { failureRate: { threshold: 0.5, window: '30s', minRequests: 20 }, halfOpenAfter: { base: '5s', max: '30s' } },
  },
  background: {
    timeout: '2m',
    retry: { attempts: 6, perTryTimeout: '30s', backoff: { base: '500ms', max: '30s', jitter: 'decorrelated' }, retryAfter: { max: '30s' } },
  },
  'no-retry': { retry: { attempts: 0 } },
} satisfies Record<string, z.input<typeof presetSchema>>;

/** The built-in presets as written (durations as strings), for the README and tests. */
export const BUILTIN_PRESETS_INPUT: Readonly<Record<string, z.input<typeof presetSchema>>> = BUILTIN_INPUT;

/** The built-in presets, parsed: what `use: [transient]` applies. */
export const BUILTIN_PRESETS: Readonly<Record<string, PresetConfig>> = Object.fromEntries(
  Object.entries(BUILTIN_INPUT).map(([n, p]) => [n, presetSchema.parse(p)]),
);

/** One layer of a route's policy: what one place in the file (or the built-in defaults) sets. */
export interface Layer {
  source: PolicySource;
  /** The path its keys are written under ("defaults", "presets.x", "routes[2]"); "" for the built-in defaults. */
  at: string;
  /** Policy keys, parsed; keys left undefined are not set by this layer. */
  values: object;
}

/** One value a layer sets. `slot` is what it replaces; `path` is the key it is written as. */
export interface Setting {
  slot: string;
  path: string;
  value: unknown;
  source: PolicySource;
  /** For a preset's setting: the preset and the route's `use` index it was reached through. */
  preset?: string;
  via?: number;
}

/** The breaker's trip condition: whichever of consecutiveFailures or failureRate a layer sets replaces the other. */
export const TRIP_SLOT = 'breaker.trip';

/** Values replaced whole, not merged key by key (besides lists and scalars). */
const WHOLE = new Set(['fallback', 'breaker.halfOpenAfter', 'breaker.failureRate']);

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function slotOf(path: string): string {
  return path === 'breaker.consecutiveFailures' || path === 'breaker.failureRate' ? TRIP_SLOT : path;
}

/** The leaf keys a layer sets, as [path, value], in the order written. `use` is not a policy key. */
export function leaves(values: object, prefix = '', out: Array<[string, unknown]> = []): Array<[string, unknown]> {
  for (const [k, v] of Object.entries(values)) {
    if (v === undefined || (prefix === '' && k === 'use')) continue;
    const path = prefix === '' ? k : `${prefix}.${k}`;
    if (isPlainObject(v) && !WHOLE.has(path)) leaves(v, path, out);
    else out.push([path, v]);
  }
  return out;
}

interface PresetEntry {
  name: string;
  builtin: boolean;
  config: PresetConfig;
  /** Its layer's values (a fallback body file already read). */
  values: object;
}

/** The presets in force, checked: built-ins first, then the file's. */
export class Presets {
  private readonly entries = new Map<string, PresetEntry>();
  private readonly order = new Map<string, string[]>();

  /**
   * Checks the file's `presets:` and records every problem (errors) and doubtful but valid
   * input (warnings). `prepare` turns a preset's parsed keys into its layer values (reading
   * a fallback body file, checking the trip condition) and reports under the given path.
   */
  constructor(user: Readonly<Record<string, PresetConfig>>, prepare: (p: PresetConfig, at: string) => object, problems: string[], warnings: string[]) {
    for (const [name, config] of Object.entries(BUILTIN_PRESETS)) this.entries.set(name, { name, builtin: true, config, values: config });
    for (const [name, config] of Object.entries(user)) {
      if (this.entries.has(name)) {
        problems.push(`presets.${name}: "${name}" is a built-in preset and cannot be redefined; give yours another name (it can build on the built-in with use: [${name}])`);
        continue;
      }
      this.entries.set(name, { name, builtin: false, config, values: prepare(config, `presets.${name}`) });
    }
    for (const [name, config] of Object.entries(user)) {
      if (this.entries.get(name)?.builtin === false) this.checkList(config.use ?? [], `presets.${name}`, problems, warnings);
    }
    this.findCycles(problems);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Every preset in force, as parsed, built-ins first (GET /config `presets`). */
  table(): Record<string, PresetConfig> {
    return Object.fromEntries([...this.entries.values()].map((e) => [e.name, e.config]));
  }

  private known(): string {
    return `known: ${[...this.entries.keys()].join(', ')}`;
  }

  /** Unknown names and repeats in one `use` list (a route's or a preset's). */
  checkList(use: readonly string[], at: string, problems: string[], warnings: string[]): void {
    const first = new Map<string, number>();
    const reached = new Map<string, number>();
    use.forEach((name, j) => {
      const where = `${at}.use[${j}]`;
      const dup = first.get(name);
      if (dup !== undefined) {
        problems.push(`${where}: preset "${name}" is listed twice (also ${at}.use[${dup}])`);
        return;
      }
      first.set(name, j);
      if (!this.entries.has(name)) {
        problems.push(`${where}: unknown preset "${name}" (${this.known()})`);
        return;
      }
      const through = reached.get(name);
      if (through !== undefined) {
        warnings.push(
          `${where}: preset "${name}" is already applied through ${at}.use[${through}] ("${use[through] as string}" uses it), so listing it again changes nothing; a preset applies once, where it is first reached`,
        );
      }
      for (const n of this.linearize(name)) if (!reached.has(n)) reached.set(n, j);
    });
  }

  /** Each back edge of the `use` graph is one cycle, reported at the `use` entry that closes it. */
  private findCycles(problems: string[]): void {
    const state = new Map<string, 'active' | 'done'>();
    const stack: string[] = [];
    const visit = (name: string): void => {
      state.set(name, 'active');
      stack.push(name);
      const use = this.entries.get(name)?.config.use ?? [];
      use.forEach((next, j) => {
        if (!this.entries.has(next)) return;
        const s = state.get(next);
        if (s === 'active') {
          const cycle = [...stack.slice(stack.indexOf(next)), next];
          problems.push(`presets.${name}.use[${j}]: preset cycle ${cycle.map((n) => `"${n}"`).join(' → ')}; presets may use other presets, but not themselves`);
        } else if (s === undefined) visit(next);
      });
      stack.pop();
      state.set(name, 'done');
    };
    for (const name of this.entries.keys()) if (!state.has(name)) visit(name);
  }

  /** A preset and everything it uses, in the order applied: what it uses first, each once, itself last. */
  linearize(name: string): string[] {
    const memo = this.order.get(name);
    if (memo) return memo;
    const out: string[] = [];
    const seen = new Set<string>();
    const walk = (n: string, stack: Set<string>): void => {
      if (seen.has(n) || stack.has(n)) return; // applied already, or a cycle (reported as a problem)
      stack.add(n);
      for (const u of this.entries.get(n)?.config.use ?? []) if (this.entries.has(u)) walk(u, stack);
      stack.delete(n);
      seen.add(n);
      out.push(n);
    };
    walk(name, new Set());
    this.order.set(name, out);
    return out;
  }

  /** The presets `name` builds on, directly or not (itself excluded). */
  private uses(name: string, other: string): boolean {
    return other !== name && this.linearize(name).includes(other);
  }

  /**
   * A route's layers in order, with its `use` list checked. `base` is the built-in defaults
   * and `defaults`; `own` is the route's keys.
   */
  layersFor(use: readonly string[], at: string, base: Layer[], own: Layer, problems: string[], warnings: string[]): { layers: Layer[]; via: Map<string, number> } {
    this.checkList(use, at, problems, warnings);
    const via = new Map<string, number>();
    use.forEach((name, j) => {
      if (!this.entries.has(name)) return;
      for (const n of this.linearize(name)) if (!via.has(n)) via.set(n, j);
    });
    const layers = [...base];
    for (const name of via.keys()) {
      const e = this.entries.get(name) as PresetEntry;
      layers.push({ source: `preset:${name}`, at: `presets.${name}`, values: e.values });
    }
    layers.push(own);
    return { layers, via };
  }

  /**
   * Merges a route's layers. Returns the winning setting of every slot, and warns about
   * conflicts: a value from one preset overriding a different value from another preset that
   * it does not build on, when the route does not set that key itself.
   */
  merge(layers: Layer[], via: Map<string, number>, use: readonly string[], at: string, warnings: string[]): Map<string, Setting> {
    const all = new Map<string, Setting[]>();
    for (const layer of layers) {
      const preset = layer.source.startsWith('preset:') ? layer.source.slice(7) : undefined;
      for (const [path, value] of leaves(layer.values)) {
        const slot = slotOf(path);
        const s: Setting = { slot, path, value, source: layer.source, ...(preset !== undefined ? { preset, via: via.get(preset) as number } : {}) };
        const list = all.get(slot);
        if (list) list.push(s);
        else all.set(slot, [s]);
      }
    }
    const out = new Map<string, Setting>();
    for (const [slot, list] of all) {
      const winner = list[list.length - 1] as Setting;
      out.set(slot, winner);
      if (winner.preset === undefined) continue; // the route (or defaults) decides
      const fromPresets = list.filter((s) => s.preset !== undefined);
      fromPresets.forEach((s, i) => {
        if (s === winner || s.preset === winner.preset || isDeepStrictEqual(s.value, winner.value)) return;
        // Overridden on purpose by a preset that builds on it: not a conflict.
        if (fromPresets.slice(i + 1).some((t) => this.uses(t.preset as string, s.preset as string))) return;
        warnings.push(
          `${this.where(at, use, winner)}: presets.${winner.preset as string}.${winner.path} (${show(winner.value)}) overrides presets.${s.preset as string}.${s.path} (${show(s.value)}) from ${this.where(at, use, s)}; the later preset wins (set ${at}.${winner.path} to choose explicitly)`,
        );
      });
    }
    return out;
  }

  private where(at: string, use: readonly string[], s: Setting): string {
    const listed = use[s.via as number] as string;
    return `${at}.use[${s.via as number}]${listed === s.preset ? '' : ` ("${listed}" uses "${s.preset as string}")`}`;
  }
}

const show = (v: unknown): string => JSON.stringify(v);

/**
 * Builds a merged policy object in the shape of `template` (the built-in defaults of that
 * block), each leaf taken from the winning setting of its slot.
 */
export function assemble(template: object, prefix: string, settings: ReadonlyMap<string, Setting>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(template)) {
    const path = prefix === '' ? k : `${prefix}.${k}`;
    out[k] = isPlainObject(v) && !WHOLE.has(path) ? assemble(v, path, settings) : settings.get(slotOf(path))?.value;
  }
  return out;
}

/** The winning setting for a key path (the trip condition's two keys share one slot). */
export function settingAt(settings: ReadonlyMap<string, Setting>, path: string): Setting | undefined {
  return settings.get(slotOf(path));
}
