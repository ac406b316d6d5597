// The request path after routing: read and inspect the body, get a backend (a dispatcher slot for
// generation routes, any backend in rotation for the rest), forward, and relay the answer.
// Before response headers arrive, a connection failure, a header timeout or a backend going down
// sends the job to another backend; after that, never.
import type { Dispatcher as UndiciDispatcher } from 'undici';
import type { Backend } from '../backends/backend.js';
import type { KeyLimiter } from '../auth/limits.js';
import { keyMayUse } from '../auth/keys.js';
import type { TokenBudgets } from '../auth/budgets.js';
import { ModelCatalog } from '../backends/catalog.js';
import type { Registry } from '../backends/registry.js';
import type { GatewayConfig } from '../config/schema.js';
import type { Dispatcher, Lease } from '../dispatch/dispatcher.js';
import { GatewayError, flavorOf, isGatewayError } from '../errors.js';
import { readBody } from '../http/body.js';
import type { RequestContext } from '../http/context.js';
import { downstreamHeaders, upstreamHeaders } from '../http/headers.js';
import type { Inspector } from '../inspect/inspector.js';
import type { BodyFacts, OutputField } from '../inspect/parse-body.js';
import { clip, clipped } from '../text/clip.js';
import { multipartField } from '../inspect/multipart.js';
import type { Cancellation } from '../http/cancel.js';
import { endWithError, relayBody, streamKind, type RelayProgress } from '../relay/relay.js';
import { StreamEndCheck, expectedEnd } from '../relay/stream-end.js';
import { chain } from '../relay/chunk-transform.js';
import { ModelRename } from '../relay/model-rename.js';
import { eventsIn } from '../relay/stream-meter.js';
import { TokenTap } from '../relay/token-tap.js';
import { UsageChunkDrop } from '../relay/usage-drop.js';
import { deleteEverywhere, pullEverywhere } from './fanout.js';
import { sendUpstream, type UpstreamResponse } from './upstream.js';
import { describeError } from '../backends/health-checker.js';

export interface ProxyDeps {
  readonly registry: Registry;
  readonly dispatcher: Dispatcher<Backend>;
  readonly inspector: Inspector;
  readonly config: () => GatewayConfig;
  /** poll a backend's catalog again (it said it lacks a model its catalog listed) */
  readonly refreshCatalog: (b: Backend) => Promise<void>;
  /** per-key rate and concurrency limits */
  readonly limiter: KeyLimiter;
  /** per-key token rates and budgets */
  readonly budgets: TokenBudgets;
  /** fired when a stop's drain deadline passes: answers still running end with a final error */
  readonly deadline: Cancellation;
  /** where a stream's inter-chunk gaps go (metrics) */
  readonly gapObserver?: (backend: string, model: string | undefined) => (seconds: number) => void;
}

type Acquire = (tried: ReadonlySet<Backend>) => Promise<Lease<Backend>>;

/**
 * Who a job is for, in fair queueing: its key, or, for a key configured with a trusted user
 * header (Open WebUI sends all its users under one key), the key's user. Open mode: one flow.
 */
function fairnessOf(ctx: RequestContext): { flow: string; weight: number; flowQueueCap: number | undefined; priority: number } {
  const key = ctx.key;
  if (!key) return { flow: '', weight: 1, flowQueueCap: undefined, priority: 0 };
  const f = key.fairness;
  const user = f.header ? ctx.req.headers[f.header] : undefined;
  const flow = typeof user === 'string' && user !== '' ? `${key.name}/${user.slice(0, 128)}` : key.name;
  ctx.record.flow = flow;
  return { flow, weight: f.weight, flowQueueCap: f.maxQueued, priority: f.priority === 'batch' ? 1 : 0 };
}

/**
 * A key may use the models its globs allow. An alias is judged by what it runs: allowed when its
 * target is, or when the key names the alias itself; a glob that merely matches an alias's name
 * never opens a target the key may not use (issue 10.3).
 */
function mayUse(ctx: RequestContext, model: string | undefined, alias: string | undefined): void {
  const key = ctx.key;
  if (key === undefined || model === undefined || keyMayUse(key, model, alias)) return;
  throw new GatewayError('model_forbidden', `key '${key.name}' may not use model '${clip(alias ?? model)}'`);
}

/** What the gateway decides on, of a multipart body: its model. */
function multipartFacts(raw: Buffer, contentType: string): BodyFacts {
  const model = multipartField(raw, contentType, 'model');
  if (model === undefined || model === '') throw new GatewayError('bad_request', 'the multipart body has no model field');
  return { model, stream: undefined, runner: '', alias: undefined, maxOutput: undefined, usageAdded: false, keepAliveZero: false, nothingToGenerate: false };
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
function streams(path: string, stream: boolean | undefined): boolean {
  return path.startsWith('/api/') ? stream !== false : stream === true;
}

/** The request's headers as a backend gets them (one spelling for every way a request goes up). */
function headersUp(ctx: RequestContext, bodyLength: number | undefined): Record<string, string | string[]> {
  return upstreamHeaders(ctx.req.headers, { requestId: ctx.id, bodyLength, remoteAddress: ctx.req.socket.remoteAddress, stripCredentials: ctx.key !== undefined });
}

function apiOf(path: string): 'ollama' | 'openai' {
  return path.startsWith('/v1/') ? 'openai' : 'ollama';
}

/** Ollama's own words for a missing model, per route (shared/reference/ollama-api.md §3). */
function modelNotFound(path: string, model: string): GatewayError {
  const name = clip(model);
  const message = path === '/api/embed' || path === '/api/embeddings' ? `model "${name}" not found, try pulling it first` : `model '${name}' not found`;
  return new GatewayError('model_not_found', message);
}

export class Proxy {
  private cursor = 0;

  constructor(private readonly deps: ProxyDeps) {}

  /** Generation and embedding routes: one dispatcher slot for the whole answer. */
  async dispatched(ctx: RequestContext): Promise<void> {
    const raw = await readBody(ctx, this.deps.config().limits.maxBodyBytes);
    ctx.record.bytesIn = raw.length;
    // an OpenAI stream is asked for its usage (token counts), and the client spared that chunk
    const wantStreamUsage = ctx.path === '/v1/chat/completions' || ctx.path === '/v1/completions';
    const cfg = this.deps.config();
    const contentType = ctx.req.headers['content-type'] ?? '';
    // a multipart body (a file and its fields): only its model is read, the bytes go as they came
    const multipart = contentType.toLowerCase().startsWith('multipart/form-data');
    const inspected = multipart
      ? { facts: multipartFacts(raw, contentType), body: raw }
      : await this.deps.inspector.inspect(raw, { aliases: cfg.aliases, wantStreamUsage });
    const facts = inspected.facts;
    let body = inspected.body;
    ctx.record.model = clipped(facts.model);
    const rename = facts.alias !== undefined && facts.model !== undefined ? new ModelRename(facts.model, facts.alias) : undefined;
    ctx.transform = chain(facts.usageAdded ? new UsageChunkDrop(cfg.limits.maxEventBytes) : undefined, rename);
    mayUse(ctx, facts.model, facts.alias);
    // Ollama's load and unload requests: a prompt-less /api/generate or message-less /api/chat.
    // An unload (`ollama stop`, Open WebUI) takes no slot and goes to every backend that has the
    // model loaded; a preload is a job like any other, for the backend warm-first picks
    const nothing = (ctx.path === '/api/generate' || ctx.path === '/api/chat') && facts.nothingToGenerate && facts.model !== undefined;
    if (nothing && facts.keepAliveZero) return this.unload(ctx, facts.model!, body);
    // a key's rate and concurrency: admitted here, released when the job ends however it ends
    const key = ctx.key;
    const release = key ? this.deps.limiter.admit(key.name, key.limits) : undefined;
    try {
      if (key?.metered) {
        // a key's token rate and budgets: an estimate held now (about 4 bytes a token), settled at the end
        const field = outputField(ctx.path);
        const output = field === undefined ? 0 : (facts.maxOutput ?? cfg.budgets.outputEstimateTokens);
        // (a file's bytes are no prompt: an audio file is not tokens at 4 bytes each)
        const charge = this.deps.budgets.admit(key.name, key.tokens, multipart ? 1 : Math.ceil(raw.length / 4), output);
        ctx.charge = charge;
        // an answer that is not streamed cannot be cut as it passes: it may generate what it holds, no more
        const bounded = key.tokens.perDay !== undefined || key.tokens.perMonth !== undefined;
        if (field !== undefined && bounded && !streams(ctx.path, facts.stream) && (facts.maxOutput === undefined || facts.maxOutput > charge.outputReserved)) {
          body = (await this.deps.inspector.inspect(body, { outputCap: { field, tokens: charge.outputReserved } })).body;
        }
      }
      await this.dispatchedAdmitted(ctx, facts, body);
      // the model is loaded there now (a preload, or any job it answered): in /api/ps at once
      if (ctx.record.status === 200 && facts.model !== undefined && ctx.record.backend !== undefined) {
        const b = this.deps.registry.byName(ctx.record.backend);
        if (b?.type === 'ollama') b.catalog.noteLoaded(facts.model);
      }
    } finally {
      release?.();
      if (ctx.charge) {
        // what a backend answered with 200 is charged (its counts, or else what was seen); a job
        // that never ran, or that the backend refused, costs nothing
        if (ctx.record.status === 200) {
          const charged = ctx.charge.settle(ctx.record.promptTokens, ctx.record.completionTokens);
          ctx.record.promptTokens = charged.prompt;
          ctx.record.completionTokens = charged.completion;
        } else {
          ctx.charge.settle(0, 0);
        }
      }
    }
  }

  private async dispatchedAdmitted(ctx: RequestContext, facts: BodyFacts, body: Buffer): Promise<void> {
    const model = facts.model;
    const api = apiOf(ctx.path);
    // no backend anywhere holds it: say so now rather than after a queue wait
    if (model !== undefined && !this.deps.registry.holds(model, api)) throw modelNotFound(ctx.path, facts.alias ?? model);
    const warmKey = model === undefined ? undefined : ModelCatalog.warmKey(model, facts.runner);
    const fair = fairnessOf(ctx);
    const acquire: Acquire = (tried) => this.deps.dispatcher.acquire({ cancel: ctx.clientGoneSignal, exclude: tried, model, warmKey, api, ...fair });
    // an answer that is not streamed comes whole at the end: however long the job takes, its
    // headers come only then, so no header timeout cuts it (and re-runs it on another backend)
    const whole = !streams(ctx.path, facts.stream);
    await this.forward(ctx, body, acquire, (b) => b.pool, model, true, whole ? 0 : undefined);
  }

  /**
   * An unload: at once, without a slot, to every healthy backend that has the model loaded (all
   * that hold it, when the gateway knows of none), answered with the backend's own answer (the
   * first that took it). The model leaves those backends' warm view and /api/ps at once.
   */
  private async unload(ctx: RequestContext, model: string, body: Buffer): Promise<void> {
    const api = apiOf(ctx.path);
    if (!this.deps.registry.holds(model, api)) throw modelNotFound(ctx.path, model);
    const holders = this.deps.registry.all.filter((b) => b.inRotation && b.type === 'ollama' && b.serves(model));
    const loaded = holders.filter((b) => b.catalog.hasLoaded(model));
    const targets = loaded.length > 0 ? loaded : holders;
    if (targets.length === 0) throw new GatewayError('no_healthy_backend', `no healthy backend has model '${clip(model)}'`);
    ctx.record.backend = targets.map((b) => b.name).join(',');
    ctx.record.attempts = 1;
    const headers = headersUp(ctx, body.length);
    const answers = await Promise.all(
      targets.map(async (b) => {
        try {
          const up = await b.aux.request({ method: 'POST', path: ctx.upstreamPath, headers, body });
          const bytes = Buffer.from(await up.body.arrayBuffer());
          if (up.statusCode === 200) b.catalog.noteUnloaded(model);
          return { status: up.statusCode, headers: up.headers, bytes };
        } catch (err) {
          return { status: 0, headers: {}, bytes: Buffer.from(describeError(err)) };
        }
      }),
    );
    const chosen = answers.find((a) => a.status === 200) ?? answers.find((a) => a.status > 0);
    if (!chosen) throw new GatewayError('upstream_unreachable', `backend unreachable (${answers.map((a) => a.bytes.toString()).join('; ')})`);
    const renamed = ctx.transform ? Buffer.concat([ctx.transform.push(chosen.bytes), ctx.transform.flush() ?? Buffer.alloc(0)]) : chosen.bytes;
    const out = downstreamHeaders(chosen.headers, ctx.id);
    out['content-length'] = renamed.length;
    ctx.record.status = chosen.status;
    ctx.record.bytesOut = renamed.length;
    ctx.record.ttfbMs = performance.now() - ctx.start;
    ctx.res.writeHead(chosen.status, out);
    ctx.res.end(renamed);
  }

  /** Everything else under `/`, `/api/` and `/v1/`: straight to a backend, no slot taken. */
  async passthrough(ctx: RequestContext): Promise<void> {
    let body = await readBody(ctx, this.deps.config().limits.maxBodyBytes);
    ctx.record.bytesIn = body.length;
    const method = ctx.record.method;
    let model: string | undefined;
    if (ctx.path === '/api/show') {
      // show goes to a backend that holds the model (and never queues behind generations)
      const inspected = await this.deps.inspector.inspect(body, { aliases: this.deps.config().aliases });
      model = inspected.facts.model;
      mayUse(ctx, model, inspected.facts.alias);
      ctx.record.model = model === undefined ? undefined : clip(model);
      body = inspected.body;
      if (model !== undefined && !this.deps.registry.holds(model, 'ollama')) throw modelNotFound(ctx.path, model);
    }
    const api = apiOf(ctx.path);
    const send = body.length > 0 || !(method === 'GET' || method === 'HEAD') ? body : undefined;
    await this.forward(ctx, send, (tried) => this.leaseAny(tried, model, api), (b) => b.aux, model);
  }

  /**
   * Model management (pull, push, create, copy, delete, blobs): off unless enabled. Pull and
   * delete go to every healthy backend unless `X-Gateway-Backend` names one; the rest go to the
   * named backend, or else to the first healthy one in config order, so that a blob upload and
   * the create that uses it meet on the same box. Never retried elsewhere.
   */
  async management(ctx: RequestContext): Promise<void> {
    if (!this.deps.config().management.enabled) {
      throw new GatewayError('management_disabled', 'model management (pull, push, create, copy, delete, blobs) is disabled on this gateway (management.enabled)');
    }
    const named = ctx.req.headers['x-gateway-backend'];
    const inRotation = this.deps.registry.all.filter((b) => b.inRotation && b.type === 'ollama');
    let target: Backend | undefined;
    if (typeof named === 'string') {
      target = inRotation.find((b) => b.name === named);
      if (!target) throw new GatewayError('backend_not_found', `no backend named '${clip(named, 64)}' is in rotation`);
    } else if (this.deps.registry.all.length === 1) {
      target = inRotation[0];
      if (!target) throw new GatewayError('no_healthy_backend', 'no healthy backend');
    } else if (ctx.path === '/api/pull' || ctx.path === '/api/delete') {
      // the whole fleet: every healthy Ollama backend
      if (inRotation.length === 0) throw new GatewayError('no_healthy_backend', 'no healthy backend');
      const body = await readBody(ctx, this.deps.config().limits.maxBodyBytes);
      ctx.record.bytesIn = body.length;
      const { facts } = await this.deps.inspector.inspect(body);
      ctx.record.model = facts.model === undefined ? undefined : clip(facts.model);
      const headers = headersUp(ctx, body.length);
      ctx.record.backend = inRotation.map((b) => b.name).join(',');
      try {
        if (ctx.path === '/api/pull') await pullEverywhere(ctx, inRotation, headers, body, facts.stream !== false);
        else await deleteEverywhere(ctx, inRotation, headers, body, facts.model ?? '');
      } finally {
        for (const b of inRotation) void this.deps.refreshCatalog(b);
      }
      return;
    } else {
      // one stable choice, the first healthy backend in config order, so that a blob upload and
      // the create that uses it (the ollama CLI sends no custom header) meet on the same box
      target = inRotation[0];
      if (!target) throw new GatewayError('no_healthy_backend', 'no healthy backend');
    }
    const body = await readBody(ctx, this.deps.config().limits.maxBodyBytes);
    ctx.record.bytesIn = body.length;
    const chosen = target;
    const send = body.length > 0 || !(ctx.record.method === 'GET' || ctx.record.method === 'HEAD') ? body : undefined;
    await this.forward(ctx, send, (tried) => (tried.has(chosen) ? Promise.reject(new GatewayError('no_healthy_backend', 'no healthy backend')) : Promise.resolve({ backend: chosen, queuedMs: 0, release: () => {} })), (b) => b.aux);
    // what it holds has changed
    if (!ctx.path.startsWith('/api/blobs/') && ctx.record.status >= 200 && ctx.record.status < 300) void this.deps.refreshCatalog(chosen);
  }

  /** A slot-less lease on any backend in rotation that may take this request, round robin. */
  private leaseAny(tried: ReadonlySet<Backend>, model: string | undefined, api: 'ollama' | 'openai'): Promise<Lease<Backend>> {
    const list = this.deps.registry.all;
    for (let i = 0; i < list.length; i++) {
      const idx = (this.cursor + i) % list.length;
      const b = list[idx]!;
      if (b.inRotation && !tried.has(b) && b.speaks(api) && b.serves(model)) {
        this.cursor = (idx + 1) % list.length;
        return Promise.resolve({ backend: b, queuedMs: 0, release: () => {} });
      }
    }
    return Promise.reject(new GatewayError('no_healthy_backend', 'no healthy backend'));
  }

  /**
   * One job, tried on up to `retry.max_attempts` backends. Before any byte reaches the client, a
   * connection failure, a header timeout, a backend going down, and (for generations) a 5xx
   * answer send it to another backend that can take it: a 500 counts against the backend's
   * health like a refused connection (a box that answers 500 to everything leaves rotation), a
   * 503 ("server busy") backs the backend off for a moment instead (issue 10.10, 10.11).
   */
  private async forward(
    ctx: RequestContext,
    body: Buffer | undefined,
    acquire: Acquire,
    via: (b: Backend) => UndiciDispatcher,
    model?: string,
    generation = false,
    headersTimeoutMs?: number,
  ): Promise<void> {
    const maxAttempts = this.deps.config().retry.maxAttempts;
    const tried = new Set<Backend>();
    let lastErr: GatewayError | undefined;
    for (let attempt = 1; ; attempt++) {
      let lease: Lease<Backend>;
      const askedAt = performance.now();
      ctx.phase = 'queued';
      try {
        lease = await acquire(tried);
      } catch (err) {
        ctx.record.queueMs = (ctx.record.queueMs ?? 0) + (performance.now() - askedAt);
        // every backend left has been tried: the last real failure says more than "none left"
        if (lastErr && isGatewayError(err) && err.code === 'no_healthy_backend') throw lastErr;
        throw err;
      }
      const b = lease.backend;
      ctx.phase = 'upstream';
      tried.add(b);
      ctx.record.queueMs = (ctx.record.queueMs ?? 0) + lease.queuedMs;
      ctx.record.backend = b.name;
      ctx.record.attempts = attempt;
      try {
        let up: UpstreamResponse;
        try {
          up = await sendUpstream(
            b,
            via(b),
            {
              method: ctx.record.method,
              path: ctx.upstreamPath,
              headers: headersUp(ctx, body?.length),
              body,
              generation,
              ...(headersTimeoutMs !== undefined ? { headersTimeoutMs } : {}),
            },
            ctx.clientGoneSignal,
            this.deps.deadline,
          );
        } catch (err) {
          const ge = err as GatewayError;
          // a backend that let a job's header timeout pass counts as failing, retried or not
          if (ge.code === 'upstream_timeout') b.failure('traffic', ge.message);
          if (!ge.retryable) throw ge;
          if (ge.code !== 'upstream_timeout') b.failure('traffic', ge.message);
          if (attempt >= maxAttempts) throw ge;
          lastErr = ge;
          continue;
        }
        if (generation && up.statusCode >= 500) {
          const busy = up.statusCode === 503;
          const why = `backend ${b.name} answered ${up.statusCode}${busy ? ' (busy)' : ''}`;
          if (busy) b.backOff(this.deps.config().health.busyBackoffMs, why);
          else b.failure('traffic', why);
          if (attempt < maxAttempts && this.othersServe(b, tried, model, apiOf(ctx.path))) {
            await up.body.dump().catch(() => undefined);
            up.done();
            lastErr = new GatewayError(busy ? 'no_healthy_backend' : 'upstream_failed', why);
            continue;
          }
        } else {
          b.success('traffic');
        }
        if (up.statusCode === 404 && model !== undefined && attempt < maxAttempts && this.othersServe(b, tried, model, apiOf(ctx.path))) {
          // it does not hold the model after all (its catalog was stale): look again, go elsewhere
          await up.body.dump().catch(() => undefined);
          up.done();
          void this.deps.refreshCatalog(b);
          lastErr = modelNotFound(ctx.path, model);
          continue;
        }
        await this.respond(ctx, b, up);
        return;
      } finally {
        lease.release();
      }
    }
  }

  private othersServe(b: Backend, tried: ReadonlySet<Backend>, model: string | undefined, api: 'ollama' | 'openai'): boolean {
    return this.deps.registry.all.some((x) => x !== b && x.inRotation && !tried.has(x) && x.speaks(api) && x.serves(model));
  }

  private async respond(ctx: RequestContext, b: Backend, up: UpstreamResponse): Promise<void> {
    const { res } = ctx;
    ctx.record.status = up.statusCode;
    const headers = downstreamHeaders(up.headers, ctx.id);
    // a rewritten answer may change length: let it go out chunked
    if (ctx.transform) delete headers['content-length'];
    res.writeHead(up.statusCode, headers);
    const ct = up.headers['content-type'];
    const kind = streamKind(Array.isArray(ct) ? ct[0] : ct);
    const progress: RelayProgress = { bytes: 0, firstByteAt: undefined, atLineStart: true };
    const tap = new TokenTap();
    const endKind = up.statusCode === 200 ? expectedEnd(ctx.path, kind) : undefined;
    const endCheck = endKind ? new StreamEndCheck(endKind) : undefined;
    ctx.streamed = endKind !== undefined;
    const gaps = ctx.streamed ? this.deps.gapObserver?.(b.name, ctx.record.model) : undefined;
    // a metered key's stream is counted as it passes, and cut when it crosses the key's budget
    const charge = ctx.streamed ? ctx.charge : undefined;
    const meter = charge ? (chunk: Buffer) => (charge.add(eventsIn(chunk, kind)) ? undefined : charge.exhausted) : undefined;
    ctx.phase = 'streaming';
    try {
      await relayBody(up.body, res, progress, { tap, end: endCheck, transform: ctx.transform, gaps, meter, stop: this.deps.deadline });
      if (endCheck && endCheck.verdict(tap.tail()) === 'cut_short') {
        const ge = new GatewayError('upstream_failed', `backend ${b.name} ended the stream without its final chunk`);
        ctx.record.code = ge.code;
        endWithError(res, kind, ge, progress.atLineStart, flavorOf(ctx.path));
      } else {
        res.end();
      }
    } catch (err) {
      const ge = up.classify(err);
      if (ge.code === 'client_closed') throw ge;
      // the relay stopped before the backend did (a spent budget): cut it, so the GPU stops
      if (!up.body.readableEnded) up.body.destroy();
      ctx.record.code = ge.code;
      if (ge.code === 'upstream_failed') b.failure('traffic', ge.message);
      endWithError(res, kind, ge, progress.atLineStart, flavorOf(ctx.path));
    } finally {
      up.done();
      ctx.record.bytesOut = progress.bytes;
      if (progress.firstByteAt !== undefined) ctx.record.ttfbMs = progress.firstByteAt - ctx.start;
      const counts = tap.counts();
      ctx.record.promptTokens = counts.prompt;
      ctx.record.completionTokens = counts.completion;
    }
  }
}
