// What the gateway needs to know of a request body: its model, whether it streams, the options
// that decide which runner serves it, and how many tokens it may generate. The body is forwarded
// as the original bytes, untouched, unless its model is an alias (then `model` is set to the
// alias's target), it is an OpenAI stream that does not ask for usage while the gateway needs
// the token counts (then `stream_options.include_usage` is set, and the relay drops that chunk),
// or a token budget caps what it may generate (then its output limit is set).
//
// The fields are read the way the backend reads them. Go's encoding/json (Ollama, on its native
// and its OpenAI routes) matches an object key to a struct field without regard to case and
// takes the last match, so `{"model":"a","Model":"b"}` runs `b` there (issue 10.2). A body with
// two spellings of a field the gateway decides on is refused; a single spelling (`MODEL`) is read
// as the field. `options` is a map in Ollama, matched exactly, and so is read exactly here.
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
  /** the most tokens it may generate (`options.num_predict`, `max_tokens`, `max_completion_tokens`, `max_output_tokens`) */
  readonly maxOutput: number | undefined;
  /** `stream_options.include_usage` was added by the gateway: the client did not ask for that chunk */
  readonly usageAdded: boolean;
  /** `keep_alive` is zero (`0`, `"0"`, `"0s"`...): unload the model once this request is done */
  readonly keepAliveZero: boolean;
  /** no prompt (absent or empty) and no messages (absent or empty): Ollama's load or unload request */
  readonly nothingToGenerate: boolean;
}

/** Where a route's output limit lives: Ollama's `options.num_predict`, or a top-level field of the OpenAI and Anthropic routes. */
export type OutputField = 'num_predict' | 'max_tokens' | 'max_output_tokens';

export interface ParseOptions {
  readonly aliases?: Readonly<Record<string, string>>;
  /** an OpenAI completions route whose token counts are needed: ask a stream for its usage */
  readonly wantStreamUsage?: boolean;
  /** set the output limit to at most this many tokens (a token budget's reservation) */
  readonly outputCap?: { readonly field: OutputField; readonly tokens: number };
}

export type ParseOutcome = { readonly ok: true; readonly facts: BodyFacts; readonly rewritten?: Uint8Array } | { readonly ok: false; readonly code: 'bad_json' | 'bad_request'; readonly message: string };

/** The body as text, as TextDecoder gives it (a leading BOM dropped, bad bytes as U+FFFD), at a third of its cost for a small body. */
function utf8(bytes: Uint8Array): string {
  const bom = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  return Buffer.from(bytes.buffer, bytes.byteOffset + bom, bytes.length - bom).toString('utf8');
}

/** The top-level fields the gateway (or a backend's routing of the job) decides on. */
const DECIDED: ReadonlySet<string> = new Set([
  'model',
  'name',
  'stream',
  'options',
  'keep_alive',
  'messages',
  'prompt',
  'input',
  'max_tokens',
  'max_completion_tokens',
  'max_output_tokens',
  'stream_options',
]);

type Json = Record<string, unknown>;

/**
 * A key as Go's encoding/json compares it to a field name (bytes.EqualFold): ASCII case folded,
 * and the two non-ASCII letters whose simple case folding reaches ASCII: ſ (U+017F) is `s`, the
 * Kelvin sign (U+212A) is `k`.
 */
export function foldKey(k: string): string {
  // eslint-disable-next-line no-control-regex
  if (!/[A-Z\u017f\u212a]/.test(k)) return k;
  return k.toLowerCase().replace(/\u017f/g, 's').replace(/\u212a/g, 'k');
}

/** The actual key of each decided field, or the message for a body that spells one twice. */
function decidedKeys(o: Json, names: ReadonlySet<string>): Map<string, string> | string {
  const found = new Map<string, string>();
  for (const k of Object.keys(o)) {
    const f = foldKey(k);
    if (!names.has(f)) continue;
    const prior = found.get(f);
    if (prior !== undefined && prior !== k) return `the request body spells the field '${f}' twice ('${prior}' and '${k}')`;
    found.set(f, k);
  }
  return found;
}

const INCLUDE_USAGE: ReadonlySet<string> = new Set(['include_usage']);

export function parseBody(bytes: Uint8Array, opts: ParseOptions = {}): ParseOutcome {
  const aliases = opts.aliases ?? {};
  if (bytes.length === 0) return { ok: false, code: 'bad_request', message: 'missing request body' };
  let value: unknown;
  try {
    value = JSON.parse(utf8(bytes));
  } catch (err) {
    return { ok: false, code: 'bad_json', message: `invalid JSON in request body: ${(err as Error).message}` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, code: 'bad_request', message: 'request body must be a JSON object' };
  }
  const o = value as Json;
  const keys = decidedKeys(o, DECIDED);
  if (typeof keys === 'string') return { ok: false, code: 'bad_request', message: keys };
  const field = (name: string): unknown => {
    const k = keys.get(name);
    return k === undefined ? undefined : o[k];
  };
  const model = field('model');
  const name = field('name');
  const modelKey = typeof model === 'string' && model !== '' ? keys.get('model')! : typeof name === 'string' ? keys.get('name')! : undefined;
  const m = modelKey === undefined ? undefined : (o[modelKey] as string);
  const stream = typeof field('stream') === 'boolean' ? (field('stream') as boolean) : undefined;
  const options = field('options');
  const opt = typeof options === 'object' && options !== null && !Array.isArray(options) ? (options as Json) : undefined;
  const runner = opt ? runnerKey(opt) : '';
  const maxOutput = count(opt?.['num_predict']) ?? count(field('max_completion_tokens')) ?? count(field('max_tokens')) ?? count(field('max_output_tokens'));
  const target = m !== undefined && Object.hasOwn(aliases, m) ? aliases[m] : undefined;
  const so = field('stream_options');
  const soObj = typeof so === 'object' && so !== null && !Array.isArray(so) ? (so as Json) : undefined;
  let soUsageKey: string | undefined;
  if (soObj) {
    const inner = decidedKeys(soObj, INCLUDE_USAGE);
    if (typeof inner === 'string') return { ok: false, code: 'bad_request', message: inner };
    soUsageKey = inner.get('include_usage');
  }
  const usageAdded = opts.wantStreamUsage === true && stream === true && !(soObj !== undefined && soUsageKey !== undefined && soObj[soUsageKey] === true);
  const cap = opts.outputCap;
  const capped = cap !== undefined && (maxOutput === undefined || maxOutput > cap.tokens);
  const keepAlive = field('keep_alive');
  const keepAliveZero = keepAlive === 0 || (typeof keepAlive === 'string' && /^\s*0+(\.0*)?\s*(ns|us|µs|ms|s|m|h)?\s*$/.test(keepAlive));
  const prompt = field('prompt');
  const messages = field('messages');
  const nothingToGenerate = (prompt === undefined || prompt === '') && (messages === undefined || (Array.isArray(messages) && messages.length === 0));
  const facts: BodyFacts = { model: target ?? m, stream, runner, alias: target === undefined ? undefined : m, maxOutput: capped ? cap.tokens : maxOutput, usageAdded, keepAliveZero, nothingToGenerate };
  if (target === undefined && !usageAdded && !capped) return { ok: true, facts };
  if (target !== undefined) o[modelKey!] = target;
  if (usageAdded) o[keys.get('stream_options') ?? 'stream_options'] = { ...(soObj ?? {}), [soUsageKey ?? 'include_usage']: true };
  if (capped) setOutputCap(o, keys, opt, cap);
  return { ok: true, facts, rewritten: new TextEncoder().encode(JSON.stringify(o)) };
}

function setOutputCap(o: Json, keys: Map<string, string>, opt: Json | undefined, cap: { readonly field: OutputField; readonly tokens: number }): void {
  if (cap.field === 'num_predict') {
    o[keys.get('options') ?? 'options'] = { ...(opt ?? {}), num_predict: cap.tokens };
    return;
  }
  o[keys.get(cap.field) ?? cap.field] = cap.tokens;
  // OpenAI's newer name for the same limit: lowered too, whichever one the server reads
  const mct = keys.get('max_completion_tokens');
  if (cap.field === 'max_tokens' && mct !== undefined) o[mct] = cap.tokens;
}

/** A positive whole number of tokens, or undefined (absent, -1 for "no limit", or nonsense). */
function count(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : undefined;
}
