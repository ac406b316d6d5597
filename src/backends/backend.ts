// One upstream server. Generation traffic goes through `pool`, whose connection count equals the
// backend's slots, so undici's own queue stays empty and the dispatcher's queue is the only one.
// Everything else (catalog calls, pulls) uses `aux`, and health probes use `probe`, so neither
// ever waits behind a long generation.
import type { Wire } from '../api-flavor.js';
import { Client, Pool, type Dispatcher } from 'undici';
import type { BackendConfig, BackendType, GatewayConfig } from '../config/schema.js';
import { basicAuth, redactUrl } from '../url-credentials.js';
import { ModelCatalog } from './catalog.js';
import { HealthState, type HealthSignal, type Transition } from './health-state.js';

/** A request on its way to this backend that has not had response headers yet. */
export interface PendingAttempt {
  /** Abort it so the proxy can send it elsewhere (the backend went down). */
  redispatch(reason: string): void;
}


/** `d`, with the backend's credentials set on every request it sends (none: `d` itself). */
function withCredentials<T extends Dispatcher>(d: T, authorization: string | undefined): T {
  if (authorization === undefined) return d;
  return d.compose((dispatch) => (opts, handler) => {
    const given = opts.headers;
    const headers: Record<string, string | string[] | undefined> = {};
    if (Array.isArray(given)) {
      for (let i = 0; i + 1 < given.length; i += 2) headers[String(given[i]).toLowerCase()] = given[i + 1] as string;
    } else if (given && typeof given === 'object') {
      for (const [k, v] of Object.entries(given as Record<string, string | string[] | undefined>)) headers[k.toLowerCase()] = v;
    }
    headers['authorization'] = authorization;
    return dispatch({ ...opts, headers }, handler);
  }) as unknown as T;
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
  /** taken out by an operator (`ollama-gateway backends drain`): finishes what it holds, takes nothing new until undrained */
  drained = false;
  /** generations: one connection per slot */
  pool: Pool;
  /** catalog polls, pass-through and management calls */
  readonly aux: Pool;
  readonly probe: Client;
  /** `Authorization: Basic` from the URL's credentials, sent on every request (undefined: none) */
  private readonly authorization: string | undefined;
  /** where connections go: the URL without its credentials */
  private readonly origin: string;
  readonly health: HealthState;
  /** the models it holds and has loaded, as its last catalog poll saw them */
  readonly catalog: ModelCatalog;
  readonly pending = new Set<PendingAttempt>();
  private readonly onTransition: TransitionListener;
  private readonly onResume: (backend: Backend) => void;
  private oldPools: Pool[] = [];
  /** it answered 503 (server busy): no new job until then (performance.now() ms) */
  private pausedUntil = 0;
  private resumeTimer: NodeJS.Timeout | undefined;

  constructor(bc: BackendConfig, cfg: GatewayConfig, onTransition: TransitionListener, onResume: (backend: Backend) => void = () => {}) {
    this.name = bc.name;
    this.url = bc.url;
    this.displayUrl = redactUrl(bc.url);
    this.type = bc.type;
    this.healthPath = bc.healthPath;
    this.catalog = new ModelCatalog(bc.type);
    this.slots = bc.slots;
    this.onTransition = onTransition;
    this.onResume = onResume;
    this.authorization = basicAuth(bc.url);
    this.origin = new URL(bc.url).origin;
    this.pool = withCredentials(new Pool(this.origin, poolOptions(cfg, bc.slots)), this.authorization);
    this.aux = withCredentials(new Pool(this.origin, poolOptions(cfg, 4)), this.authorization);
    this.probe = withCredentials(
      // (no timers of undici's own: the probe's deadline, which a stall of the gateway does not spend, bounds it all)
      new Client(this.origin, {
        connectTimeout: 0,
        headersTimeout: 0,
        bodyTimeout: 0,
        keepAliveTimeout: 4_000,
      }),
      this.authorization,
    );
    this.health = new HealthState(cfg.health.unhealthyAfter, cfg.health.healthyAfter);
  }

  get healthy(): boolean {
    return this.health.healthy;
  }

  /** Can the dispatcher hand this backend a new job right now? */
  get available(): boolean {
    return this.health.healthy && !this.retiring && !this.drained && this.inFlight < this.slots;
  }

  /** Can it answer this API? Ollama speaks both; an OpenAI-compatible server only `/v1`. */
  speaks(api: Wire): boolean {
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
    return this.health.healthy && !this.retiring && !this.drained;
  }

  /** Backed off after a "server busy": in rotation, but takes no new job for now. */
  get paused(): boolean {
    return this.pausedUntil !== 0 && this.pausedUntil > performance.now();
  }

  /** It said it is busy: give it `ms` before the next job, then let waiting jobs at it. */
  backOff(ms: number, reason: string): void {
    if (ms <= 0) return;
    this.health.lastError = reason;
    this.pausedUntil = performance.now() + ms;
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      this.pausedUntil = 0;
      this.onResume(this);
    }, ms);
    this.resumeTimer.unref();
  }

  success(signal: HealthSignal): void {
    const t = this.health.success(signal);
    if (t) this.onTransition(this, t);
  }

  failure(signal: HealthSignal, reason: string, strong = false): void {
    const t = this.health.failure(signal, reason, strong);
    if (t) this.onTransition(this, t);
  }

  /** A reload changed the slot count: new jobs use a pool of the new size, the old one drains. */
  resize(slots: number, cfg: GatewayConfig): void {
    if (slots === this.slots) return;
    this.slots = slots;
    const old = this.pool;
    this.pool = withCredentials(new Pool(this.origin, poolOptions(cfg, slots)), this.authorization);
    this.oldPools.push(old);
    void old.close().finally(() => {
      this.oldPools = this.oldPools.filter((p) => p !== old);
    });
  }

  /** Close every connection. With `force`, in-flight requests are cut. */
  async close(force = false): Promise<void> {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    const all = [this.pool, this.aux, this.probe, ...this.oldPools];
    await Promise.allSettled(all.map((d) => (force ? d.destroy() : d.close())));
  }
}
