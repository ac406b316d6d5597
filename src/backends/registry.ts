// The set of backends, and what happens when it changes: backends join, leave after finishing
// their work, drop out of rotation and come back. Listeners (the dispatcher) hear every change.
import type { Wire } from '../api-flavor.js';
import type { Logger } from 'pino';
import type { GatewayConfig } from '../config/schema.js';
import { Backend } from './backend.js';
import type { Transition } from './health-state.js';

export type RegistryEvent =
  | { readonly type: 'added'; readonly backend: Backend }
  | { readonly type: 'up'; readonly backend: Backend }
  | { readonly type: 'down'; readonly backend: Backend }
  | { readonly type: 'retiring'; readonly backend: Backend }
  | { readonly type: 'removed'; readonly backend: Backend }
  | { readonly type: 'resized'; readonly backend: Backend }
  /** its back-off after a "server busy" ended: it takes jobs again */
  | { readonly type: 'resumed'; readonly backend: Backend }
  /** an operator took it out of rotation, or put it back */
  | { readonly type: 'drained'; readonly backend: Backend }
  | { readonly type: 'undrained'; readonly backend: Backend };

export type RegistryListener = (e: RegistryEvent) => void;

export class Registry {
  private list: Backend[] = [];
  private readonly listeners: RegistryListener[] = [];
  private cfg: GatewayConfig;

  constructor(
    cfg: GatewayConfig,
    private readonly log: Logger,
  ) {
    this.cfg = cfg;
  }

  get all(): readonly Backend[] {
    return this.list;
  }

  get config(): GatewayConfig {
    return this.cfg;
  }

  /** Does any backend of the fleet (healthy or not, but not leaving) hold this model for this API? */
  holds(model: string, api: Wire): boolean {
    return this.list.some((b) => !b.retiring && b.speaks(api) && b.serves(model));
  }

  /**
   * Take a backend out of rotation by hand (maintenance), or put it back: drained, it finishes
   * what it holds and takes nothing new; a reload keeps the state. Returns the backend, or
   * undefined when none has that name.
   */
  setDrained(name: string, drained: boolean): Backend | undefined {
    const b = this.byName(name);
    if (!b || b.drained === drained) return b;
    b.drained = drained;
    this.log.info({ backend: b.name, in_flight: b.inFlight }, drained ? 'backend drained: it finishes what it holds and takes nothing new' : 'backend undrained: back in rotation');
    this.emit({ type: drained ? 'drained' : 'undrained', backend: b });
    return b;
  }

  byName(name: string): Backend | undefined {
    return this.list.find((b) => b.name === name);
  }

  on(listener: RegistryListener): void {
    this.listeners.push(listener);
  }

  private emit(e: RegistryEvent): void {
    for (const l of this.listeners) l(e);
  }

  /** First start and every reload: make the set match the config, cutting nothing in flight. */
  apply(cfg: GatewayConfig): void {
    this.cfg = cfg;
    const wanted = new Map(cfg.backends.map((b) => [b.url, b]));
    const leaving = this.list.filter((b) => !b.retiring && wanted.get(b.url)?.name !== b.name);
    for (const b of this.list) {
      const bc = wanted.get(b.url);
      if (b.retiring || leaving.includes(b) || !bc) continue;
      b.health.setThresholds(cfg.health.unhealthyAfter, cfg.health.healthyAfter);
      if (bc.slots !== b.slots) {
        this.log.info({ backend: b.name, from: b.slots, to: bc.slots }, 'backend slots changed');
        b.resize(bc.slots, cfg);
        this.emit({ type: 'resized', backend: b });
      }
    }
    // newcomers join before anyone leaves, so waiters never see an empty fleet in between
    for (const bc of cfg.backends) {
      if (this.list.some((b) => b.url === bc.url && !b.retiring && !leaving.includes(b))) continue;
      const b = new Backend(
        bc,
        cfg,
        (backend, t) => this.onTransition(backend, t),
        (backend) => this.emit({ type: 'resumed', backend }),
      );
      this.list.push(b);
      this.log.info({ backend: b.name, url: b.displayUrl, slots: b.slots }, 'backend added');
      this.emit({ type: 'added', backend: b });
    }
    for (const b of leaving) {
      b.retiring = true;
      this.log.info({ backend: b.name, url: b.displayUrl, in_flight: b.inFlight }, 'backend leaving: finishes its work, takes no more');
      this.emit({ type: 'retiring', backend: b });
      this.removeIfIdle(b);
    }
  }

  /** The dispatcher calls this when a slot frees: a retiring backend leaves once idle. */
  removeIfIdle(b: Backend): void {
    if (!b.retiring || b.inFlight > 0 || !this.list.includes(b)) return;
    this.list = this.list.filter((x) => x !== b);
    void b.close();
    this.log.info({ backend: b.name, url: b.displayUrl }, 'backend removed');
    this.emit({ type: 'removed', backend: b });
  }

  private onTransition(b: Backend, t: Transition): void {
    if (t.healthy) {
      this.log.info({ backend: b.name, url: b.displayUrl, reason: t.reason }, 'backend up: back in rotation');
      this.emit({ type: 'up', backend: b });
    } else {
      this.log.warn({ backend: b.name, url: b.displayUrl, reason: t.reason, redispatched: b.pending.size }, 'backend down: out of rotation');
      // requests that have not had a byte back yet go elsewhere instead of waiting on a dead box
      for (const p of [...b.pending]) p.redispatch(`backend ${b.name} went down`);
      this.emit({ type: 'down', backend: b });
    }
  }

  async close(force: boolean): Promise<void> {
    await Promise.allSettled(this.list.map((b) => b.close(force)));
  }
}
