// `npm run schema`: writes schema/outrigger.schema.json from the zod schema, so editors
// and CI validate against exactly what the proxy accepts. A test fails when it drifts.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configSchema } from './schema.js';

export function jsonSchema(): string {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' });
  return JSON.stringify(schema, null, 2) + '\n';
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'schema', 'outrigger.schema.json');
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, jsonSchema());
  process.stdout.write(`wrote ${out}\n`);
}
