// The catalog routes: `/`, `/api/version`, `/api/tags`, `/api/ps`, `/v1/models`,
// `/v1/models/:id`, answered from the fleet's catalog in each API's own shape.
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.js';
import { GatewayError } from '../errors.js';
import type { RequestContext } from '../http/context.js';
import { sendBody, sendJson } from '../http/respond.js';
import { fleetOpenAIModel, fleetOpenAIModels, fleetPs, fleetTags, fleetVersion, withAliases } from './catalog.js';

export class CatalogRoutes {
  private readonly conflictsLogged = new Set<string>();

  constructor(
    private readonly backends: () => readonly Backend[],
    private readonly aliases: () => Readonly<Record<string, string>>,
    private readonly log: Logger,
  ) {}

  answer(ctx: RequestContext): void {
    const list = this.backends();
    switch (ctx.path) {
      case '/':
        return sendBody(ctx, 200, 'Ollama is running', 'text/plain; charset=utf-8');
      case '/api/version': {
        const version = fleetVersion(list);
        if (version === undefined) throw new GatewayError('no_healthy_backend', 'no healthy backend has reported its version');
        return sendJson(ctx, 200, { version });
      }
      case '/api/tags':
        return sendJson(ctx, 200, { models: withAliases(fleetTags(list, (name, digests) => this.conflict(name, digests)).models, this.aliases()) });
      case '/api/ps':
        return sendJson(ctx, 200, fleetPs(list));
      case '/v1/models':
        return sendJson(ctx, 200, fleetOpenAIModels(list, this.aliases()));
      default: {
        const id = decodeURIComponent(ctx.path.slice('/v1/models/'.length));
        const model = fleetOpenAIModel(list, id, this.aliases());
        if (!model) throw new GatewayError('model_not_found', `model '${id}' not found`);
        return sendJson(ctx, 200, model);
      }
    }
  }

  private conflict(name: string, digests: string[]): void {
    const key = `${name} ${digests.sort().join(',')}`;
    if (this.conflictsLogged.has(key)) return;
    this.conflictsLogged.add(key);
    this.log.warn({ model: name, digests }, 'one model name, different digests across backends: they may answer differently');
  }
}
