// One upstream server. Generation traffic goes through `pool`, whose connection count equals the
// backend's slots, so undici's own queue stays empty and the dispatcher's queue is the only one.
// Everything else (catalog calls, pulls) uses `aux`, and health probes use `probe`, so neither
// ever waits behind a long generation.
import { Client, Pool } from 'undici';
import { redactUrl, type BackendConfig, type BackendType, type GatewayConfig } from '../config/schema.js';
import { ModelCatalog } from './catalog.js';
import { HealthState, type HealthSignal, type Transition } from './health-state.js';

/** A request on its way to this backend that has not had response headers yet. */
export interface PendingAttempt {
  /** Abort it so the proxy can send it elsewhere (the backend went down). */
  redispatch(reason: string): void;
}

export type TransitionListener = (backend: Backend, t: Transition) => void;

function poolOptions(cfg: GatewayConfig, connections: number): Pool.Options {
  return {
    connections,
    pipelining: 1,
    connectTimeout: cfg.timeouts.connectMs,
    headersTimeout: cfg.timeouts.headersMs,
    bodyTimeout: cfg.timeouts.idleMs,
    keepAliveTimeout: 4_000,
    keepAliveMaxTimeout: 60_000,
  };
}

export class Backend {
  readonly name: string;
  readonly url: string;
  /** the URL for logs and status pages, credentials hidden */
  readonly displayUrl: string;
  readonly type: BackendType;
  readonly healthPath: string | undefined;
  slots: number;
  /** jobs holding one of this backend's slots (the dispatcher's count) */
  inFlight = 0;
  /** removed by a reload: finishes what it holds, takes nothing new */
  retiring = false;
  pool: Pool;
  readonly aux: Pool;
  readonly probe: Client;
  readonly health: HealthState;
  /** the models it holds and has loaded, as its last catalog poll saw them */
  readonly catalog: ModelCatalog;
  readonly pending = new Set<PendingAttempt>();
  private readonly onTransition: TransitionListener;
  private oldPools: Pool[] = [];

  constructor(bc: BackendConfig, cfg: GatewayConfig, onTransition: TransitionListener) {
    this.name = bc.name;
    this.url = bc.url;
    this.displayUrl = redactUrl(bc.url);
    this.type = bc.type;
    this.healthPath = bc.healthPath;
    this.catalog = new ModelCatalog(bc.type);
    this.slots = bc.slots;
    this.onTransition = onTransition;
    this.pool = new Pool(bc.url, poolOptions(cfg, bc.slots));
    this.aux = new Pool(bc.url, poolOptions(cfg, 4));
    this.probe = new Client(bc.url, {
      connectTimeout: cfg.health.timeoutMs,
      headersTimeout: cfg.health.timeoutMs,
      bodyTimeout: cfg.health.timeoutMs,
      keepAliveTimeout: 4_000,
    });
    this.health = new HealthState(cfg.health.unhealthyAfter, cfg.health.healthyAfter);
  }

  get healthy(): boolean {
    return this.health.healthy;
  }

  /** Can the dispatcher hand this backend a new job right now? */
  get available(): boolean {
    return this.health.healthy && !this.retiring && this.inFlight < this.slots;
  }

  /** Can it answer this API? Ollama speaks both; an OpenAI-compatible server only `/v1`. */
  speaks(api: 'ollama' | 'openai'): boolean {
    return this.type === 'ollama' || api === 'openai';
  }

  /** Might it serve this model? (Before its first catalog poll: yes.) */
  serves(model: string | undefined): boolean {
    return this.catalog.serves(model);
  }

  /** Is this model (with these runner options) loaded there, as far as the gateway knows? */
  isWarm(key: string): boolean {
    return this.catalog.isWarm(key);
  }

  /** Is it in rotation at all (busy or not)? */
  get inRotation(): boolean {
    return this.health.healthy && !this.retiring;
  }

  success(signal: HealthSignal): void {
    const t = this.health.success(signal);
    if (t) this.onTransition(this, t);
  }

  failure(signal: HealthSignal, reason: string): void {
    const t = this.health.failure(signal, reason);
    if (t) this.onTransition(this, t);
  }

  /** A reload changed the slot count: new jobs use a pool of the new size, the old one drains. */
  resize(slots: number, cfg: GatewayConfig): void {
    if (slots === this.slots) return;
    this.slots = slots;
    const old = this.pool;
    this.pool = new Pool(this.url, poolOptions(cfg, slots));
    this.oldPools.push(old);
    void old.close().finally(() => {
      this.oldPools = this.oldPools.filter((p) => p !== old);
    });
  }

  /** Close every connection. With `force`, in-flight requests are cut. */
  async close(force = false): Promise<void> {
    const all = [this.pool, this.aux, this.probe, ...this.oldPools];
    await Promise.allSettled(all.map((d) => (force ? d.destroy() : d.close())));
  }
}
