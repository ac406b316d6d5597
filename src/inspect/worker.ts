// Piscina worker: parses a large request body off the main thread, so an 8 MiB base64 image
// never stalls the event loop that relays everybody's tokens. The bytes come in moved (not
// copied) and go back the same way.
import { move, transferableSymbol, valueSymbol } from 'piscina';
import { parseBody, type ParseOutcome } from './parse-body.js';

export interface InspectTask {
  readonly bytes: ArrayBuffer;
}

export interface InspectResult {
  readonly outcome: ParseOutcome;
  readonly bytes: ArrayBuffer;
}

export default function inspect(task: InspectTask): unknown {
  const outcome = parseBody(new Uint8Array(task.bytes));
  const result: InspectResult = { outcome, bytes: task.bytes };
  // a Transferable wrapper: piscina posts `result` with `bytes` in the transfer list
  return move({ [transferableSymbol]: task.bytes, [valueSymbol]: result });
}
