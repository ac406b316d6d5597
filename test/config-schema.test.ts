// The config file's JSON Schema (gateway.schema.json, for editors): made from the zod schema that
// check-config uses, shipped as generated, and in agreement with it on the example and on errors.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import t from 'tap';
import { parse } from 'yaml';
import { configJsonSchema } from '../dist/src/config/json-schema.js';

const ROOT = new URL('..', import.meta.url).pathname;
const shipped = JSON.parse(readFileSync(join(ROOT, 'gateway.schema.json'), 'utf8')) as Record<string, unknown>;

t.test('gateway.schema.json is what `ollama-gateway schema` makes from the config schema today', async (t) => {
  t.same(shipped, configJsonSchema(), 'regenerate it with: node bin/ollama-gateway.js schema > gateway.schema.json');
  t.match(readFileSync(join(ROOT, 'gateway.example.yaml'), 'utf8'), /^# yaml-language-server: \$schema=\.\/gateway\.schema\.json\n/, 'the example file names it for editors');
});

t.test('the schema accepts the example file and refuses what check-config refuses', async (t) => {
  const validate = new Ajv2020({ strict: false, allErrors: true }).compile(shipped);
  const example = parse(readFileSync(join(ROOT, 'gateway.example.yaml'), 'utf8')) as Record<string, unknown>;
  t.ok(validate(example), `the example is valid (${JSON.stringify(validate.errors)})`);
  t.notOk(validate({ ...example, slots_per_backend: 'four' }), 'a string where a number goes');
  t.notOk(validate({ ...example, backendz: [] }), 'an unknown key (a typo)');
  t.notOk(validate({ ...example, backends: [] }), 'no backend');
  t.notOk(validate({ ...example, log: { level: 'loud' } }), 'a level pino does not have');
});
