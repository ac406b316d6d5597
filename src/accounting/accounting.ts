// The accounting stage: the one place that reads a finished request (its facts and its outcome)
// and writes everything that follows from it, in order: the key's charge settled, its log line,
// its ledger row, its status-page sample and its metrics. As fastify's log controller keeps every
// request-lifecycle line in one class, nothing else on the request path logs or counts a request.
import type { Logger } from 'pino';
import type { RequestContext } from '../front/context.js';
import type { GatewayMetrics } from '../metrics/metrics.js';
import { DISPATCHED_PATHS, GATEWAY_PATHS, routeLabel } from '../front/routes.js';
import type { StatusHistory } from '../status/history.js';
import type { UsageLedger } from '../usage/ledger.js';
import { logRequest } from './log-line.js';

export interface AccountingDeps {
  readonly log: Logger;
  readonly ledger: UsageLedger;
  readonly history: StatusHistory;
  readonly metrics: GatewayMetrics;
  /** a model name as a metric label (the fleet's models and aliases; anything else is "other") */
  readonly modelLabel: (model: string | undefined) => string;
  /** no keys configured: every request is the open gateway's ('') */
  readonly open: () => boolean;
}

export class Accounting {
  constructor(private readonly deps: AccountingDeps) {}

  ended(ctx: RequestContext): void {
    const { facts: r, outcome: o } = ctx;
    r.durationMs = performance.now() - ctx.start;
    if (ctx.clientGone) o.clientLeft();
    if (ctx.charge) {
      // what the key is charged is what the log line and the ledger say it used
      const charged = o.charged ? ctx.charge.settle(o.promptTokens, o.completionTokens) : ctx.charge.settle(0, 0);
      if (o.charged) {
        o.promptTokens = charged.prompt;
        o.completionTokens = charged.completion;
      }
    }
    const d = this.deps;
    logRequest(d.log, r, o);
    const model = d.modelLabel(r.model);
    // the ledger: generation and embedding jobs by key (a request without a valid key has none)
    if (DISPATCHED_PATHS.has(ctx.path) && r.method === 'POST' && (d.open() || ctx.key !== undefined)) {
      d.ledger.record({ key: ctx.key?.name ?? '', model, promptTokens: o.promptTokens ?? 0, completionTokens: o.completionTokens ?? 0, error: o.isError });
    }
    if (!GATEWAY_PATHS.has(ctx.path)) d.history.ended(o.isError, r.queueMs, r.backend, o.completionTokens);
    if (ctx.trace) ctx.trace.end(spanAttributes(ctx, model), o.isError ? (o.code ?? `status ${o.status}`) : undefined);
    d.metrics.requestEnded({
      route: routeLabel(ctx.path),
      key: r.key ?? '',
      status: o.status,
      code: o.code,
      model,
      backend: r.backend ?? '',
      queueMs: r.queueMs,
      ttfbMs: r.ttfbMs,
      durationMs: r.durationMs,
      attempts: r.attempts,
      promptTokens: o.promptTokens,
      completionTokens: o.completionTokens,
      cancelledIn: o.status !== 499 ? undefined : o.phase === 'streaming' ? 'streaming' : o.phase === 'queued' ? 'queued' : 'before_first_byte',
      streamed: o.streamed,
    });
  }
}

/** The GenAI conventions' operation of a route (what it asks a model to do). */
function operationOf(path: string): string | undefined {
  if (path === '/api/chat' || path === '/v1/chat/completions' || path === '/v1/messages' || path === '/v1/responses') return 'chat';
  if (path === '/api/generate' || path === '/v1/completions') return 'text_completion';
  if (path === '/api/embed' || path === '/api/embeddings' || path === '/v1/embeddings') return 'embeddings';
  return undefined;
}

/** A finished request as span attributes: HTTP's and the GenAI conventions', never a prompt or an answer. */
function spanAttributes(ctx: RequestContext, model: string): Record<string, string | number> {
  const { facts: r, outcome: o } = ctx;
  const a: Record<string, string | number> = { 'http.response.status_code': o.status, 'gateway.request_id': r.id, 'gateway.attempts': r.attempts };
  const op = operationOf(ctx.path);
  if (op !== undefined) {
    a['gen_ai.operation.name'] = op;
    a['gen_ai.provider.name'] = 'ollama';
  }
  if (r.model !== undefined) {
    a['gen_ai.request.model'] = r.model;
    a['gateway.model_label'] = model;
  }
  if (o.promptTokens !== undefined) a['gen_ai.usage.input_tokens'] = o.promptTokens;
  if (o.completionTokens !== undefined) a['gen_ai.usage.output_tokens'] = o.completionTokens;
  if (o.streamed && r.ttfbMs !== undefined) a['gen_ai.server.time_to_first_token'] = r.ttfbMs / 1000;
  if (r.queueMs !== undefined) a['gateway.queue_ms'] = r.queueMs;
  if (r.backend !== undefined) a['gateway.backend'] = r.backend;
  if (r.key !== undefined) a['gateway.key'] = r.key;
  if (o.code !== undefined) a['error.type'] = o.code;
  return a;
}
