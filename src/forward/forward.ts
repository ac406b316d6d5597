// The forward stage: one job, tried on up to `retry.max_attempts` backends, then handed to the
// next stage, the relay (given in ForwardDeps, so that stages import only what came before them).
// Before any byte reaches the client, a connection failure, a header timeout, a backend going down,
// and (for generations) a 5xx answer send it to another backend that can take it: a 500 counts
// against the backend's health like a refused connection (a box that answers 500 to everything
// leaves rotation), a 503 ("server busy") backs the backend off for a moment instead (issue
// 10.10, 10.11). After the first byte, never: what is left to say goes in the stream.
import type { Dispatcher as UndiciDispatcher } from 'undici';
import { wireOf } from '../api-flavor.js';
import type { Backend } from '../backends/backend.js';
import type { GatewayConfig } from '../config/schema.js';
import type { Dispatcher, Lease } from '../dispatch/dispatcher.js';
import { GatewayError, isGatewayError } from '../errors.js';
import type { RequestContext } from '../front/context.js';
import { upstreamHeaders } from '../front/headers.js';
import type { Cancellation } from '../cancel.js';
import { clip } from '../text/clip.js';
import { sendUpstream, type Upstream } from './upstream.js';

/** How a job gets a backend for each try: a dispatcher slot, a slot-less pick, or one named box. */
export type Acquire = (tried: ReadonlySet<Backend>) => Promise<Lease<Backend>> | Lease<Backend>;

export interface ForwardJob {
  /** the body to send (undefined: none) */
  readonly body: Buffer | undefined;
  readonly acquire: Acquire;
  /** which of the backend's pools carries it */
  readonly via: (b: Backend) => UndiciDispatcher;
  /** the model it needs (a backend that says it lacks it sends the job elsewhere) */
  readonly model?: string | undefined;
  /** a generation: a 5xx answer is retried elsewhere, a header timeout is not */
  readonly generation?: boolean;
  /** wait this long for response headers (0: no limit; undefined: the pool's) */
  readonly headersTimeoutMs?: number | undefined;
}

export interface ForwardDeps {
  readonly dispatcher: Dispatcher<Backend>;
  readonly config: () => GatewayConfig;
  /** poll a backend's catalog again (it said it lacks a model its catalog listed) */
  readonly refreshCatalog: (b: Backend) => Promise<void>;
  /** a stop's drain deadline: a request still waiting for headers then is answered 503 */
  readonly stop: Cancellation;
  /** the next stage, given the answer that is to reach the client (the relay) */
  readonly relay: (ctx: RequestContext, b: Backend, up: Upstream) => Promise<void>;
}

/** The request's headers as a backend gets them (one spelling for every way a request goes up). */
export function headersUp(ctx: RequestContext, bodyLength: number | undefined): Record<string, string | string[]> {
  return upstreamHeaders(ctx.req.headers, { requestId: ctx.id, bodyLength, remoteAddress: ctx.req.socket.remoteAddress, stripCredentials: ctx.key !== undefined });
}

/** Ollama's own words for a missing model, per route (shared/reference/ollama-api.md §3). */
export function modelNotFound(path: string, model: string): GatewayError {
  const name = clip(model);
  const message = path === '/api/embed' || path === '/api/embeddings' ? `model "${name}" not found, try pulling it first` : `model '${name}' not found`;
  return new GatewayError('model_not_found', message);
}

export class Forwarder {
  constructor(private readonly deps: ForwardDeps) {}

  async run(ctx: RequestContext, job: ForwardJob): Promise<void> {
    const { facts, outcome } = ctx;
    const maxAttempts = this.deps.config().retry.maxAttempts;
    const api = wireOf(ctx.path);
    const tried = new Set<Backend>();
    const headers = headersUp(ctx, job.body?.length);
    let lastErr: GatewayError | undefined;
    for (let attempt = 1; ; attempt++) {
      let lease: Lease<Backend>;
      const askedAt = performance.now();
      outcome.phase = 'queued';
      const waiting = ctx.trace?.child('gateway.queue', false, { 'gateway.attempt': attempt });
      try {
        lease = await job.acquire(tried);
        waiting?.end();
      } catch (err) {
        waiting?.setAttribute('error.type', isGatewayError(err) ? err.code : 'internal_error');
        waiting?.end();
        facts.queueMs = (facts.queueMs ?? 0) + (performance.now() - askedAt);
        // every backend left has been tried: the last real failure says more than "none left"
        if (lastErr && isGatewayError(err) && err.code === 'no_healthy_backend') throw lastErr;
        throw err;
      }
      const b = lease.backend;
      outcome.phase = 'upstream';
      tried.add(b);
      facts.queueMs = (facts.queueMs ?? 0) + lease.queuedMs;
      facts.backend = b.name;
      facts.attempts = attempt;
      const elsewhere = () => attempt < maxAttempts && this.deps.dispatcher.canServe({ exclude: tried, model: job.model, api });
      // the try's span, whose traceparent the backend gets (in place of the client's)
      const trying = ctx.trace?.child(`${facts.method} ${b.name}`, true, { 'gateway.backend': b.name, 'gateway.attempt': attempt, 'server.address': b.displayUrl });
      const sent = trying ? { ...headers, ...ctx.trace!.headersFor(trying) } : headers;
      try {
        let up;
        try {
          up = await sendUpstream(
            b,
            job.via(b),
            { method: facts.method, path: ctx.upstreamPath, headers: sent, body: job.body, generation: job.generation === true, ...(job.headersTimeoutMs !== undefined ? { headersTimeoutMs: job.headersTimeoutMs } : {}) },
            ctx.clientGoneSignal,
            this.deps.stop,
          );
        } catch (err) {
          const ge = err as GatewayError;
          trying?.setAttribute('error.type', ge.code);
          // a backend that let a job's header timeout pass counts as failing, retried or not
          if (ge.code === 'upstream_timeout') b.failure('traffic', ge.message);
          if (!ge.retryable) throw ge;
          if (ge.code !== 'upstream_timeout') b.failure('traffic', ge.message);
          if (attempt >= maxAttempts) throw ge;
          lastErr = ge;
          continue;
        }
        trying?.setAttribute('http.response.status_code', up.statusCode);
        if (job.generation && up.statusCode >= 500) {
          const busy = up.statusCode === 503;
          const why = `backend ${b.name} answered ${up.statusCode}${busy ? ' (busy)' : ''}`;
          if (busy) b.backOff(this.deps.config().health.busyBackoffMs, why);
          else b.failure('traffic', why);
          if (elsewhere()) {
            await up.discard();
            lastErr = new GatewayError(busy ? 'no_healthy_backend' : 'upstream_failed', why);
            continue;
          }
        } else {
          b.success('traffic');
        }
        if (up.statusCode === 404 && job.model !== undefined && elsewhere()) {
          // it does not hold the model after all (its catalog was stale): look again, go elsewhere
          await up.discard();
          void this.deps.refreshCatalog(b);
          lastErr = modelNotFound(ctx.path, job.model);
          continue;
        }
        await this.deps.relay(ctx, b, up);
        return;
      } finally {
        trying?.end();
        lease.release();
      }
    }
  }
}
