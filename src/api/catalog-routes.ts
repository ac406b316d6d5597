// The catalog routes: `/`, `/api/version`, `/api/tags`, `/api/ps`, `/v1/models`,
// `/v1/models/:id`, answered from the fleet's catalog in each API's own shape.
import type { Logger } from 'pino';
import type { Backend } from '../backends/backend.js';
import { GatewayError } from '../errors.js';
import { keyMayUse } from '../auth/keys.js';
import { clip } from '../text/clip.js';
import type { RequestContext } from '../front/context.js';
import { sendBody, sendJson } from '../front/respond.js';
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
    const aliases = this.aliases();
    // each key is shown what it may use (an alias by its target), and nothing else
    const key = ctx.key;
    const visible = (name: string): boolean => {
      if (!key) return true;
      const target = Object.hasOwn(aliases, name) ? aliases[name] : undefined;
      return target === undefined ? keyMayUse(key, name) : keyMayUse(key, target, name);
    };
    switch (ctx.path) {
      case '/':
        return sendBody(ctx, 200, 'Ollama is running', 'text/plain; charset=utf-8');
      case '/api/version': {
        const version = fleetVersion(list);
        if (version === undefined) throw new GatewayError('no_healthy_backend', 'no healthy backend has reported its version');
        return sendJson(ctx, 200, { version });
      }
      case '/api/tags':
        return sendJson(ctx, 200, { models: withAliases(fleetTags(list, (name, digests) => this.conflict(name, digests)).models, aliases).filter((m) => visible(m.name)) });
      case '/api/ps':
        return sendJson(ctx, 200, { models: fleetPs(list).models.filter((m) => visible(m.name)) });
      case '/v1/models': {
        const all = fleetOpenAIModels(list, aliases);
        return sendJson(ctx, 200, { ...all, data: all.data.filter((m) => visible(m.id)) });
      }
      default: {
        // (the path is already decoded: http/normalize-path.ts)
        const id = ctx.path.slice('/v1/models/'.length);
        const model = visible(id) ? fleetOpenAIModel(list, id, aliases) : undefined;
        if (!model) throw new GatewayError('model_not_found', `model '${clip(id)}' not found`);
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
