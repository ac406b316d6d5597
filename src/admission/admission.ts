// The admission stage: may this key run this job, now? In order: the model allowlist (an alias
// judged by its target), the key's request rate and concurrency, its token rate and budgets (an
// estimate held now, settled by the accounting stage), and who the job is for in fair queueing.
// It answers with a ticket the request path releases when the job ends, however it ends.
import type { ApiKey } from '../auth/keys.js';
import { keyMayUse } from '../auth/keys.js';
import type { Limiter } from '../auth/limits.js';
import type { Budgets } from '../auth/budgets.js';
import type { GatewayConfig } from '../config/schema.js';
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../front/context.js';
import type { Inspector } from '../inspect/inspector.js';
import type { BodyFacts, OutputField } from '../inspect/parse-body.js';
import { clip } from '../text/clip.js';

/** Who a job is for, in fair queueing, and its share. */
export interface FairShare {
  readonly flow: string;
  readonly weight: number;
  readonly flowQueueCap: number | undefined;
  readonly priority: number;
}

export interface Ticket {
  /** the body to send (with its output limit capped, for a budget that cannot be cut mid-answer) */
  readonly body: Buffer;
  readonly fair: FairShare;
  /** the job is over: the key's concurrency slot goes back */
  release(): void;
}

export interface AdmissionDeps {
  readonly limiter: Limiter;
  readonly budgets: Budgets;
  readonly inspector: Inspector;
  readonly config: () => GatewayConfig;
}

/**
 * A key may use the models its globs allow. An alias is judged by what it runs: allowed when its
 * target is, or when the key names the alias itself; a glob that merely matches an alias's name
 * never opens a target the key may not use (issue 10.3).
 */
export function mayUse(key: ApiKey | undefined, model: string | undefined, alias: string | undefined): void {
  if (key === undefined || model === undefined || keyMayUse(key, model, alias)) return;
  throw new GatewayError('model_forbidden', `key '${key.name}' may not use model '${clip(alias ?? model)}'`);
}

/** Where a route's output limit goes, when a budget caps it (embeddings generate nothing). */
function outputField(path: string): OutputField | undefined {
  switch (path) {
    case '/api/generate':
    case '/api/chat':
      return 'num_predict';
    case '/v1/chat/completions':
    case '/v1/completions':
    case '/v1/messages':
      return 'max_tokens';
    case '/v1/responses':
      return 'max_output_tokens';
    default:
      return undefined;
  }
}

/** Is the answer streamed? Ollama's native routes stream unless told not to; the rest only when asked. */
export function streams(path: string, stream: boolean | undefined): boolean {
  return path.startsWith('/api/') ? stream !== false : stream === true;
}

/**
 * Who a job is for: its key, or, for a key configured with a trusted user header (Open WebUI
 * sends all its users under one key), the key's user. Open mode: one flow.
 */
function fairShare(ctx: RequestContext): FairShare {
  const key = ctx.key;
  if (!key) return { flow: '', weight: 1, flowQueueCap: undefined, priority: 0 };
  const f = key.fairness;
  const user = f.header ? ctx.req.headers[f.header] : undefined;
  const flow = typeof user === 'string' && user !== '' ? `${key.name}/${user.slice(0, 128)}` : key.name;
  return { flow, weight: f.weight, flowQueueCap: f.maxQueued, priority: f.priority === 'batch' ? 1 : 0 };
}

const NOTHING_HELD = (): void => {};

export class Admission {
  constructor(private readonly deps: AdmissionDeps) {}

  /** Admit a job whose body says `facts`; `promptEstimate`: the tokens its prompt is held at until its counts come. */
  async admit(ctx: RequestContext, facts: BodyFacts, body: Buffer, promptEstimate: number): Promise<Ticket> {
    const key = ctx.key;
    mayUse(key, facts.model, facts.alias);
    const fair = fairShare(ctx);
    ctx.facts.flow = fair.flow === '' ? undefined : fair.flow;
    if (!key) return { body, fair, release: NOTHING_HELD };
    const release = await this.deps.limiter.admit(key.name, key.limits);
    try {
      if (key.metered) body = await this.charge(ctx, key, facts, body, promptEstimate);
    } catch (err) {
      release();
      throw err;
    }
    return { body, fair, release };
  }

  /** A metered key's token rate and budgets: an estimate held now, settled when the job ends. */
  private async charge(ctx: RequestContext, key: ApiKey, facts: BodyFacts, body: Buffer, promptEstimate: number): Promise<Buffer> {
    const cfg = this.deps.config();
    const field = outputField(ctx.path);
    const output = field === undefined ? 0 : (facts.maxOutput ?? cfg.budgets.outputEstimateTokens);
    const charge = await this.deps.budgets.admit(key.name, key.tokens, promptEstimate, output);
    ctx.charge = charge;
    // an answer that is not streamed cannot be cut as it passes: it may generate what it holds, no more
    const bounded = key.tokens.perDay !== undefined || key.tokens.perMonth !== undefined;
    if (field !== undefined && bounded && !streams(ctx.path, facts.stream) && (facts.maxOutput === undefined || facts.maxOutput > charge.outputReserved)) {
      return (await this.deps.inspector.inspect(body, { outputCap: { field, tokens: charge.outputReserved } })).body;
    }
    return body;
  }
}
