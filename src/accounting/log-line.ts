// The one line a request leaves when it ends. Only routing facts and figures: never the prompt,
// the answer, or a credential.
import type { Logger } from 'pino';
import type { Outcome, RequestFacts } from './outcome.js';

const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 100) / 100);

export function logRequest(log: Logger, r: RequestFacts, o: Outcome): void {
  const level = o.status >= 500 && o.status !== 503 ? 'warn' : 'info';
  log[level](
    {
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
    },
    'request',
  );
}
