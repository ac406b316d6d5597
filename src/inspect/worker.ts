// Piscina worker: parses a large request body off the main thread, so an 8 MiB base64 image
// never stalls the event loop that relays everybody's tokens. The bytes come in moved (not
// copied) and go back the same way.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { parseBody, type ParseOptions, type ParseOutcome } from './parse-body.js';

export interface InspectTask {
  readonly bytes: ArrayBuffer;
  readonly opts: ParseOptions;
}

export interface InspectResult {
  readonly outcome: ParseOutcome;
  readonly bytes: ArrayBuffer;
}

export default function inspect(task: InspectTask): unknown {
  const parsed = parseBody(new Uint8Array(task.bytes), task.opts);
  // a rewritten body (alias, usage asked) comes back in place of the original; the outcome itself never carries bytes across
  const bytes = parsed.ok && parsed.rewritten ? copyOut(parsed.rewritten) : task.bytes;
  const outcome: ParseOutcome = parsed.ok ? { ok: true, facts: parsed.facts } : parsed;
  const result: InspectResult = { outcome, bytes };
  // a Transferable wrapper: piscina posts `result` with `bytes` in the transfer list
  return move({ [transferableSymbol]: bytes, [valueSymbol]: result });
}

function copyOut(u: Uint8Array): ArrayBuffer {
  const ab = new ArrayBuffer(u.length);
  new Uint8Array(ab).set(u);
  return ab;
}
