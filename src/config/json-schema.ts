// The config file's JSON Schema, made from the one zod schema that validates it, so that editors
// (the YAML language server's `# yaml-language-server: $schema=...` line) complete and check a
// gateway.yaml the way `check-config` does. `gateway.schema.json` in the package is this output.
import { z } from 'zod';
import { fileSchema } from './schema.js';

export function configJsonSchema(): Record<string, unknown> {
  const generated = z.toJSONSchema(fileSchema, { io: 'input', unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return {
    $schema: generated['$schema'],
    title: 'ollama-gateway configuration',
    description: 'The YAML file `ollama-gateway serve --config` reads (every option: gateway.example.yaml). Made by `ollama-gateway schema`.',
    ...Object.fromEntries(Object.entries(generated).filter(([k]) => k !== '$schema')),
  };
}
