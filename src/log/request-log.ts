// The one line a request leaves when it ends. Only routing facts and figures: never the prompt,
// the answer, or a credential.
import type { Logger } from 'pino';

export interface RequestRecord {
  id: string;
  method: string;
  path: string;
  model: string | undefined;
  backend: string | undefined;
  /** the API key's name (never the key) */
  key: string | undefined;
  /** the fairness identity when it is more than the key (a key's user) */
  flow: string | undefined;
  status: number;
  /** stable error code when the gateway answered with an error, or the client left */
  code: string | undefined;
  /** milliseconds spent waiting for a slot */
  queueMs: number | undefined;
  /** milliseconds from arrival to the first byte sent to the client */
  ttfbMs: number | undefined;
  durationMs: number;
  bytesIn: number;
  bytesOut: number;
  attempts: number;
  promptTokens: number | undefined;
  completionTokens: number | undefined;
}

const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 100) / 100);

export function logRequest(log: Logger, r: RequestRecord): void {
  const level = r.status >= 500 && r.status !== 503 ? 'warn' : 'info';
  log[level](
    {
      req_id: r.id,
      method: r.method,
      path: r.path,
      model: r.model,
      backend: r.backend,
      key: r.key,
      flow: r.flow !== r.key ? r.flow : undefined,
      status: r.status,
      code: r.code,
      queue_ms: round(r.queueMs),
      ttfb_ms: round(r.ttfbMs),
      duration_ms: round(r.durationMs),
      bytes_in: r.bytesIn,
      bytes_out: r.bytesOut,
      attempts: r.attempts,
      prompt_tokens: r.promptTokens,
      completion_tokens: r.completionTokens,
    },
    'request',
  );
}
