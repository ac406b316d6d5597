// What the gateway needs to know of a request body: its model, whether it streams, the options
// that decide which runner serves it, and how many tokens it may generate. The body is forwarded
// as the original bytes, untouched, unless its model is an alias (then `model` is set to the
// alias's target) or it is an OpenAI stream that does not ask for usage while the gateway needs
// the token counts (then `stream_options.include_usage` is set, and the relay drops that chunk).
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
  /** the most tokens it may generate (`options.num_predict`, `max_tokens`, `max_completion_tokens`) */
  readonly maxOutput: number | undefined;
  /** `stream_options.include_usage` was added by the gateway: the client did not ask for that chunk */
  readonly usageAdded: boolean;
}

export interface ParseOptions {
  readonly aliases?: Readonly<Record<string, string>>;
  /** an OpenAI completions route whose token counts are needed: ask a stream for its usage */
  readonly wantStreamUsage?: boolean;
}

export type ParseOutcome = { readonly ok: true; readonly facts: BodyFacts; readonly rewritten?: Uint8Array } | { readonly ok: false; readonly code: 'bad_json' | 'bad_request'; readonly message: string };

const decoder = new TextDecoder('utf-8', { fatal: false, ignoreBOM: false });

export function parseBody(bytes: Uint8Array, opts: ParseOptions = {}): ParseOutcome {
  const aliases = opts.aliases ?? {};
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
  const maxOutput = count(typeof options === 'object' && options !== null ? (options as Record<string, unknown>)['num_predict'] : undefined) ?? count(o['max_completion_tokens']) ?? count(o['max_tokens']);
  const target = m !== undefined && Object.hasOwn(aliases, m) ? aliases[m] : undefined;
  const so = o['stream_options'];
  const usageAdded = opts.wantStreamUsage === true && stream === true && !(typeof so === 'object' && so !== null && (so as Record<string, unknown>)['include_usage'] === true);
  if (target === undefined && !usageAdded) return { ok: true, facts: { model: m, stream, runner, alias: undefined, maxOutput, usageAdded } };
  if (target !== undefined) o[typeof o['model'] === 'string' && o['model'] !== '' ? 'model' : 'name'] = target;
  if (usageAdded) o['stream_options'] = { ...(typeof so === 'object' && so !== null && !Array.isArray(so) ? so : {}), include_usage: true };
  return { ok: true, facts: { model: target ?? m, stream, runner, alias: target === undefined ? undefined : m, maxOutput, usageAdded }, rewritten: new TextEncoder().encode(JSON.stringify(o)) };
}

/** A positive whole number of tokens, or undefined (absent, -1 for "no limit", or nonsense). */
function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}
