import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { jsonSchema } from '../../src/config/write-schema.js';
import { configSchema } from '../../src/config/schema.js';

describe('schema/outrigger.schema.json', () => {
  it('matches the zod schema (run `npm run schema` after changing src/config/schema.ts)', () => {
    expect(readFileSync('schema/outrigger.schema.json', 'utf8')).toBe(jsonSchema());
  });

  it('accepts the bundled configs and rejects unknown keys', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = ajv.compile(JSON.parse(jsonSchema()) as object);
    for (const f of ['config/outrigger.yaml', 'config/demo.yaml']) {
      const doc = parse(readFileSync(f, 'utf8')) as unknown;
      expect(validate(doc), `${f}: ${JSON.stringify(validate.errors)}`).toBe(true);
    }
    expect(validate({ routes: [{ name: 'a', upstream: 'b', retyr: {} }] })).toBe(false);
    expect(validate({ defaults: { retry: { attempts: 'three' } } })).toBe(false);
  });
});

type Node = { default?: unknown; properties?: Record<string, Node> };

/** The value each key of an object schema defaults to, from the JSON Schema's `default`s alone. */
function defaultsOf(node: Node): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, child] of Object.entries(node.properties ?? {})) {
    if (child.default === undefined) continue;
    // A block with a default ({}) is written out key by key; an optional block has none.
    out[key] = child.properties !== undefined ? defaultsOf(child) : child.default;
  }
  return out;
}

describe('the JSON Schema’s defaults', () => {
  const schema = JSON.parse(jsonSchema()) as Node;

  it('include the duration and size keys, whose types transform their input', () => {
    expect(schema.properties?.defaults?.properties?.timeout?.default).toBe(15_000);
    expect(schema.properties?.defaults?.properties?.bodyTimeout?.default).toBe(30_000);
    expect(schema.properties?.http?.properties?.maxHeaderBytes?.default).toBe(16_384);
  });

  it('are the defaults the proxy applies, for every key of an empty config', () => {
    const written = defaultsOf(schema);
    const applied = configSchema.parse({});
    // Every defaulted key has its default in the JSON Schema (durations in ms, sizes in
    // bytes: the values the proxy works with), and those values are accepted as written.
    expect(written).toEqual(applied);
    expect(configSchema.parse(written)).toEqual(applied);
    // The same check can fail: a default changed in the written config shows.
    expect(configSchema.parse({ ...written, defaults: { ...(written.defaults as object), timeout: 1 } })).not.toEqual(applied);
  });
});
