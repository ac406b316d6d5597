// Keeps every backend's model catalog fresh: a poll on an interval, at once when a backend joins
// or comes back into rotation, and on demand when a backend turns out not to hold a model its
// catalog listed. Polls go through the backend's `aux` pool: never behind a generation.
import type { Logger } from 'pino';
import type { Backend } from './backend.js';
import type { Registry } from './registry.js';

export class CatalogPoller {
  private timer: NodeJS.Timeout | undefined;
  private readonly inFlight = new Map<Backend, Promise<void>>();

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly onChange: () => void,
  ) {
    registry.on((e) => {
      if (e.type === 'added' || e.type === 'up') void this.refresh(e.backend);
    });
  }

  /** Poll every backend now; resolves when this first round is done. Then poll on the interval. */
  async start(): Promise<void> {
    await Promise.all(this.registry.all.map((b) => this.refresh(b)));
    this.schedule();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One poll of one backend; concurrent calls share it. */
  refresh(b: Backend): Promise<void> {
    const running = this.inFlight.get(b);
    if (running) return running;
    const p = b.catalog
      .refresh(b.aux, this.registry.config.catalog.timeoutMs, this.log, b.name)
      .catch((err: unknown) => this.log.debug({ backend: b.name, err: String(err) }, 'catalog poll failed'))
      .finally(() => {
        this.inFlight.delete(b);
        // a backend that turns out to hold a model may take waiting jobs for it
        this.onChange();
      });
    this.inFlight.set(b, p);
    return p;
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      void Promise.all(this.registry.all.filter((b) => b.inRotation).map((b) => this.refresh(b))).finally(() => {
        if (this.timer) this.schedule();
      });
    }, this.registry.config.catalog.intervalMs);
    this.timer.unref();
  }
}
