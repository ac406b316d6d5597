// Tokens as a stream passes, for keys with token budgets: backends report the real counts only
// at the end, but they send about one token per NDJSON line or SSE event, so counting those
// tells how far a generation has got. The real counts settle the account when it ends.
import type { StreamKind } from './stream-kind.js';

const NEWLINE = 0x0a;
const DATA = Buffer.from('data:');

export function eventsIn(chunk: Buffer, kind: StreamKind): number {
  let n = 0;
  if (kind === 'ndjson') {
    for (let at = chunk.indexOf(NEWLINE); at !== -1; at = chunk.indexOf(NEWLINE, at + 1)) n++;
  } else if (kind === 'sse') {
    for (let at = chunk.indexOf(DATA); at !== -1; at = chunk.indexOf(DATA, at + DATA.length)) n++;
  }
  return n;
}
