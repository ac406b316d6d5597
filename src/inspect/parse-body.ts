// What the gateway needs to know of a request body: its model, whether it streams, and the
// options that decide which runner serves it. The body is forwarded as the original bytes,
// untouched, unless its model is an alias: then `model` is set to the alias's target.
import { runnerKey } from '../models/runner.js';

export interface BodyFacts {
  /** `model` (or the legacy `name`), when it is a string */
  readonly model: string | undefined;
  /** `stream` when the client set it to a boolean */
  readonly stream: boolean | undefined;
  /** the runner-affecting options (`num_ctx`, ...), as a key; '' for the defaults */
  readonly runner: string;
  /** the name the client asked for, when it was an alias (`model` is then the target) */
  readonly alias: string | undefined;
}

export type ParseOutcome = { readonly ok: true; readonly facts: BodyFacts; readonly rewritten?: Uint8Array } | { readonly ok: false; readonly code: 'bad_json' | 'bad_request'; readonly message: string };

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false });

export function parseBody(bytes: Uint8Array, aliases: Readonly<Record<string, string>> = {}): ParseOutcome {
  if (bytes.length === 0) return { ok: false, code: 'bad_request', message: 'missing request body' };
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(bytes));
  } catch (err) {
    return { ok: false, code: 'bad_json', message: `invalid JSON in request body: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_request', message: 'request body must be a JSON object' };
  }
  const o = value as Record<string, unknown>;
  const m = typeof o['model'] === 'string' && o['model'] !== '' ? o['model'] : typeof o['name'] === 'string' ? o['name'] : undefined;
  const stream = typeof o['stream'] === 'boolean' ? o['stream'] : undefined;
  const options = o['options'];
  const runner = typeof options === 'object' && options !== null && !Array.isArray(options) ? runnerKey(options as Record<string, unknown>) : '';
  const target = m !== undefined && Object.hasOwn(aliases, m) ? aliases[m] : undefined;
  if (target === undefined) return { ok: true, facts: { model: m, stream, runner, alias: undefined } };
  o[typeof o['model'] === 'string' && o['model'] !== '' ? 'model' : 'name'] = target;
  return { ok: true, facts: { model: target, stream, runner, alias: m }, rewritten: new TextEncoder().encode(JSON.stringify(o)) };
}
