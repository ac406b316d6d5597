// The one line a request leaves when it ends. Only routing facts and figures: never the prompt,
// the answer, or a credential.
//
// It is the one line every request writes, so it is serialized here, by one JSON.stringify of
// its flat fields, and handed to the logger's destination with pino's own level, time and
// bindings around it: the same line pino would write (a test holds the two equal), for a
// fraction of the cost. pino's serializer walks the object key by key with a redaction pass,
// which at thousands of requests a second was ~8% of a small answer's CPU; the redacted names
// cannot occur in these fields.
import { pino, type DestinationStream, type Logger } from 'pino';
import type { Outcome, RequestFacts } from './outcome.js';

const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 100) / 100);

const S = pino.symbols;

/** What of pino's own state a line is framed with (pino.symbols: its interface for integrations). */
interface PinoFrame {
  /** `{"level":"info"` by level number, as the level formatter writes it */
  readonly [S.lsCacheSym]: Record<number, string>;
  /** `,"pid":123` and any child bindings */
  readonly [S.chindingsSym]: string;
  /** `,"time":"…"` */
  readonly [S.timeSym]: () => string;
  readonly [S.streamSym]: DestinationStream;
}

/** The line's own fields, in their order (undefined ones are left out of the line). */
export function requestLineFields(r: RequestFacts, o: Outcome): Record<string, string | number | undefined> {
  return {
    req_id: r.id,
    method: r.method,
    path: r.path,
    model: r.model,
    backend: r.backend,
    key: r.key,
    flow: r.flow !== r.key ? r.flow : undefined,
    status: o.status,
    code: o.code,
    queue_ms: round(r.queueMs),
    ttfb_ms: round(r.ttfbMs),
    duration_ms: round(r.durationMs),
    bytes_in: r.bytesIn,
    bytes_out: r.bytesOut,
    attempts: r.attempts,
    prompt_tokens: o.promptTokens,
    completion_tokens: o.completionTokens,
  };
}

export function logRequest(log: Logger, r: RequestFacts, o: Outcome): void {
  const level = o.status >= 500 && o.status !== 503 ? 'warn' : 'info';
  if (!log.isLevelEnabled(level)) return;
  const inner = JSON.stringify(requestLineFields(r, o)).slice(1, -1);
  const p = log as unknown as PinoFrame;
  const head = p[S.lsCacheSym][log.levels.values[level]!]! + p[S.timeSym]() + p[S.chindingsSym];
  p[S.streamSym].write(`${head}${inner === '' ? '' : ','}${inner},"msg":"request"}\n`);
}
