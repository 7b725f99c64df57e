import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { jsonSchema } from '../../src/config/write-schema.js';

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
