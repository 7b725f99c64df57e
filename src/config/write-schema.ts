// `npm run schema`: writes schema/outrigger.schema.json from the zod schema, so editors
// and CI validate against exactly what the proxy accepts. A test fails when it drifts.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configSchema } from './schema.js';

export function jsonSchema(): string {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12', override: keepDefault });
  return JSON.stringify(schema, null, 2) + '\n';
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'schema', 'outrigger.schema.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, jsonSchema());
  process.stdout.write(`wrote ${out}\n`);
}

/**
 * zod leaves out the `default` of a key whose type transforms its input (durations, sizes,
 * lower-cased header names), since a default is an output value. Ours are milliseconds,
 * bytes and lower-case names, which those keys also accept as input, so the JSON Schema can
 * carry them (test/config/json-schema.test.ts checks every defaulted key has its own).
 */
function keepDefault(ctx: { zodSchema: z.core.$ZodTypes; jsonSchema: z.core.JSONSchema.BaseSchema }): void {
  const def = ctx.zodSchema._zod.def;
  if (def.type !== 'default' || ctx.jsonSchema.default !== undefined) return;
  const value: unknown = def.defaultValue;
  // Plain data only: a number JSON cannot hold (Infinity) is left out rather than written as null.
  if (typeof value === 'number' ? Number.isFinite(value) : typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'object' && value !== null)) ctx.jsonSchema.default = value;
}
