// Generation and embedding routes, as one line: read and inspect the body (front), admit it
// (admission), get a slot and send it (dispatch, forward), relay the answer (relay). The
// accounting stage reads what became of it when the request ends. Ollama's unload requests take
// no slot and go to every backend that has the model loaded.
import { wireOf } from '../api-flavor.js';
import type { Backend } from '../backends/backend.js';
import { ModelCatalog } from '../backends/catalog.js';
import type { Registry } from '../backends/registry.js';
import type { GatewayConfig } from '../config/schema.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { GatewayError, describeError } from '../errors.js';
import { readBody } from '../front/body.js';
import type { RequestContext } from '../front/context.js';
import { downstreamHeaders } from '../front/headers.js';
import type { Inspector } from '../inspect/inspector.js';
import type { BodyFacts } from '../inspect/parse-body.js';
import { multipartField } from '../inspect/multipart.js';
import { clip, clipped } from '../text/clip.js';
import { chain } from '../relay/chunk-transform.js';
import { ModelRename } from '../relay/model-rename.js';
import { UsageChunkDrop } from '../relay/usage-drop.js';
import { mayUse, streams, type Admission } from '../admission/admission.js';
import { headersUp, modelNotFound, type Forwarder } from '../forward/forward.js';

export interface JobDeps {
  readonly registry: Registry;
  readonly dispatcher: Dispatcher<Backend>;
  readonly inspector: Inspector;
  readonly admission: Admission;
  readonly forwarder: Forwarder;
  readonly config: () => GatewayConfig;
}

/** What the gateway decides on, of a multipart body: its model. */
function multipartFacts(raw: Buffer, contentType: string): BodyFacts {
  const model = multipartField(raw, contentType, 'model');
  if (model === undefined || model === '') throw new GatewayError('bad_request', 'the multipart body has no model field');
  return { model, stream: undefined, runner: '', alias: undefined, maxOutput: undefined, usageAdded: false, keepAliveZero: false, nothingToGenerate: false };
}

export class Jobs {
  constructor(private readonly deps: JobDeps) {}

  /** One dispatcher slot for the whole answer. */
  async run(ctx: RequestContext): Promise<void> {
    const d = this.deps;
    const cfg = d.config();
    const raw = await readBody(ctx, cfg.limits.maxBodyBytes);
    ctx.facts.bytesIn = raw.length;
    // an OpenAI stream is asked for its usage (token counts), and the client spared that chunk
    const wantStreamUsage = ctx.path === '/v1/chat/completions' || ctx.path === '/v1/completions';
    const contentType = ctx.req.headers['content-type'] ?? '';
    // a multipart body (a file and its fields): only its model is read, the bytes go as they came
    const multipart = contentType.toLowerCase().startsWith('multipart/form-data');
    const { facts, body } = multipart ? { facts: multipartFacts(raw, contentType), body: raw } : await d.inspector.inspect(raw, { aliases: cfg.aliases, wantStreamUsage });
    const model = facts.model;
    ctx.facts.model = clipped(model);
    const rename = facts.alias !== undefined && model !== undefined ? new ModelRename(model, facts.alias) : undefined;
    ctx.transform = chain(facts.usageAdded ? new UsageChunkDrop(cfg.limits.maxEventBytes) : undefined, rename);
    // Ollama's load and unload requests: a prompt-less /api/generate or message-less /api/chat.
    // An unload (`ollama stop`, Open WebUI) takes no slot; a preload is a job like any other
    const nothing = (ctx.path === '/api/generate' || ctx.path === '/api/chat') && facts.nothingToGenerate && model !== undefined;
    if (nothing && facts.keepAliveZero) {
      mayUse(ctx.key, model, facts.alias);
      return this.unload(ctx, model!, body);
    }
    // (a file's bytes are no prompt: an audio file is not tokens at 4 bytes each)
    const ticket = await d.admission.admit(ctx, facts, body, multipart ? 1 : Math.ceil(raw.length / 4));
    try {
      const api = wireOf(ctx.path);
      // no backend anywhere holds it: say so now rather than after a queue wait
      if (model !== undefined && !d.registry.holds(model, api)) throw modelNotFound(ctx.path, facts.alias ?? model);
      const warmKey = model === undefined ? undefined : ModelCatalog.warmKey(model, facts.runner);
      const cancel = ctx.clientGoneSignal;
      await d.forwarder.run(ctx, {
        body: ticket.body,
        acquire: (tried) => d.dispatcher.acquire({ cancel, exclude: tried, model, warmKey, api, ...ticket.fair }),
        via: (b) => b.pool,
        model,
        generation: true,
        // an answer that is not streamed comes whole at the end: however long the job takes, its
        // headers come only then, so no header timeout cuts it (and re-runs it on another backend)
        headersTimeoutMs: streams(ctx.path, facts.stream) ? undefined : 0,
      });
      // the model is loaded there now (a preload, or any job it answered): in /api/ps at once
      if (ctx.outcome.status === 200 && model !== undefined && ctx.facts.backend !== undefined) {
        const b = d.registry.byName(ctx.facts.backend);
        if (b?.type === 'ollama') b.catalog.noteLoaded(model);
      }
    } finally {
      ticket.release();
    }
  }

  /**
   * An unload: at once, without a slot, to every healthy backend that has the model loaded (all
   * that hold it, when the gateway knows of none), answered with the backend's own answer (the
   * first that took it). The model leaves those backends' warm view and /api/ps at once.
   */
  private async unload(ctx: RequestContext, model: string, body: Buffer): Promise<void> {
    if (!this.deps.registry.holds(model, wireOf(ctx.path))) throw modelNotFound(ctx.path, model);
    const holders = this.deps.registry.all.filter((b) => b.inRotation && b.type === 'ollama' && b.serves(model));
    const loaded = holders.filter((b) => b.catalog.hasLoaded(model));
    const targets = loaded.length > 0 ? loaded : holders;
    if (targets.length === 0) throw new GatewayError('no_healthy_backend', `no healthy backend has model '${clip(model)}'`);
    ctx.facts.backend = targets.map((b) => b.name).join(',');
    ctx.facts.attempts = 1;
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
    ctx.outcome.status = chosen.status;
    ctx.facts.bytesOut = renamed.length;
    ctx.facts.ttfbMs = performance.now() - ctx.start;
    ctx.res.writeHead(chosen.status, out);
    ctx.res.end(renamed);
  }
}
