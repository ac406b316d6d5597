// Everything else under `/`, `/api/` and `/v1/` that a backend answers: straight to a backend in
// rotation, no slot taken (the dispatcher's choice, as for a job). Model management (pull, push,
// create, copy, delete, blobs) is off unless enabled: pull and delete go to every healthy backend
// unless `X-Gateway-Backend` names one; the rest go to the named backend, or else to the first
// healthy one in config order, so that a blob upload and the create that uses it meet on the same
// box. Never retried elsewhere.
import { wireOf } from '../api-flavor.js';
import type { Backend } from '../backends/backend.js';
import type { Registry } from '../backends/registry.js';
import type { GatewayConfig } from '../config/schema.js';
import type { Dispatcher } from '../dispatch/dispatcher.js';
import { GatewayError } from '../errors.js';
import { readBody } from '../front/body.js';
import type { RequestContext } from '../front/context.js';
import type { Inspector } from '../inspect/inspector.js';
import { clip } from '../text/clip.js';
import { mayUse } from '../admission/admission.js';
import { headersUp, modelNotFound, type Forwarder } from '../forward/forward.js';
import { deleteEverywhere, pullEverywhere } from './fanout.js';

export interface PassthroughDeps {
  readonly registry: Registry;
  readonly dispatcher: Dispatcher<Backend>;
  readonly inspector: Inspector;
  readonly forwarder: Forwarder;
  readonly config: () => GatewayConfig;
  /** poll a backend's catalog again (what it holds has changed) */
  readonly refreshCatalog: (b: Backend) => Promise<void>;
}

/** A body to send: none for a bodiless GET or HEAD. */
function sendable(ctx: RequestContext, body: Buffer): Buffer | undefined {
  return body.length > 0 || !(ctx.method === 'GET' || ctx.method === 'HEAD') ? body : undefined;
}

export class Passthrough {
  constructor(private readonly deps: PassthroughDeps) {}

  async run(ctx: RequestContext): Promise<void> {
    const d = this.deps;
    let body = await readBody(ctx, d.config().limits.maxBodyBytes);
    ctx.facts.bytesIn = body.length;
    let model: string | undefined;
    if (ctx.path === '/api/show') {
      // show goes to a backend that holds the model (and never queues behind generations)
      const inspected = await d.inspector.inspect(body, { aliases: d.config().aliases });
      model = inspected.facts.model;
      mayUse(ctx.key, model, inspected.facts.alias);
      ctx.facts.model = model === undefined ? undefined : clip(model);
      body = inspected.body;
      if (model !== undefined && !d.registry.holds(model, 'ollama')) throw modelNotFound(ctx.path, model);
    }
    const api = wireOf(ctx.path);
    await d.forwarder.run(ctx, { body: sendable(ctx, body), acquire: (tried) => d.dispatcher.pass({ exclude: tried, model, api }), via: (b) => b.aux, model });
  }

  async management(ctx: RequestContext): Promise<void> {
    const d = this.deps;
    if (!d.config().management.enabled) {
      throw new GatewayError('management_disabled', 'model management (pull, push, create, copy, delete, blobs) is disabled on this gateway (management.enabled)');
    }
    const named = ctx.req.headers['x-gateway-backend'];
    const inRotation = d.registry.all.filter((b) => b.inRotation && b.type === 'ollama');
    let target: Backend | undefined;
    if (typeof named === 'string') {
      target = inRotation.find((b) => b.name === named);
      if (!target) throw new GatewayError('backend_not_found', `no backend named '${clip(named, 64)}' is in rotation`);
    } else if (d.registry.all.length > 1 && (ctx.path === '/api/pull' || ctx.path === '/api/delete')) {
      return this.everywhere(ctx, inRotation);
    } else {
      // one stable choice, the first healthy backend in config order, so that a blob upload and
      // the create that uses it (the ollama CLI sends no custom header) meet on the same box
      target = inRotation[0];
    }
    if (!target) throw new GatewayError('no_healthy_backend', 'no healthy backend');
    const body = await readBody(ctx, d.config().limits.maxBodyBytes);
    ctx.facts.bytesIn = body.length;
    const chosen = target;
    const lease = { backend: chosen, queuedMs: 0, release: () => {} };
    await d.forwarder.run(ctx, {
      body: sendable(ctx, body),
      acquire: (tried) => {
        if (tried.has(chosen)) throw new GatewayError('no_healthy_backend', 'no healthy backend');
        return lease;
      },
      via: (b) => b.aux,
    });
    // what it holds has changed
    if (!ctx.path.startsWith('/api/blobs/') && ctx.outcome.status >= 200 && ctx.outcome.status < 300) void d.refreshCatalog(chosen);
  }

  /** Pull or delete on the whole fleet: every healthy Ollama backend. */
  private async everywhere(ctx: RequestContext, inRotation: readonly Backend[]): Promise<void> {
    const d = this.deps;
    if (inRotation.length === 0) throw new GatewayError('no_healthy_backend', 'no healthy backend');
    const body = await readBody(ctx, d.config().limits.maxBodyBytes);
    ctx.facts.bytesIn = body.length;
    const { facts } = await d.inspector.inspect(body);
    ctx.facts.model = facts.model === undefined ? undefined : clip(facts.model);
    const headers = headersUp(ctx, body.length);
    ctx.facts.backend = inRotation.map((b) => b.name).join(',');
    try {
      const skipped = d.registry.all.filter((b) => b.type === 'ollama' && !b.inRotation).map((b) => ({ name: b.name, why: b.drained ? 'drained' : b.retiring ? 'leaving' : 'down' }));
      if (ctx.path === '/api/pull') await pullEverywhere(ctx, inRotation, headers, body, facts.stream !== false, skipped);
      else await deleteEverywhere(ctx, inRotation, headers, body, facts.model ?? '');
    } finally {
      for (const b of inRotation) void d.refreshCatalog(b);
    }
  }
}
