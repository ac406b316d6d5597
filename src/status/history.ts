// A few minutes of the fleet's recent past for the status page: every 5 s, a sample of the queue
// and of what ended since the last sample. Bounded: 10 minutes of samples.

export interface Sample {
  /** epoch ms */
  readonly t: number;
  readonly queueDepth: number;
  readonly inFlight: number;
  /** requests that ended since the previous sample, and those that failed (any 4xx or 5xx but a client leaving, or a stream ended by an error: as the ledger and the key table count them) */
  readonly requests: number;
  readonly errors: number;
  /** median queue wait of the requests in this interval, ms */
  readonly waitP50Ms: number;
}

export interface BackendRate {
  /** output tokens per second over the last interval */
  tokensPerSecond: number;
}

const EVERY_MS = 5_000;
const KEEP = 120;

export class StatusHistory {
  readonly samples: Sample[] = [];
  private requests = 0;
  private errors = 0;
  private waits: number[] = [];
  private tokens = new Map<string, number>();
  readonly rates = new Map<string, number>();
  private last = Date.now();
  private readonly timer: NodeJS.Timeout;

  constructor(private readonly now: () => { queueDepth: number; inFlight: number }) {
    this.timer = setInterval(() => this.sample(), EVERY_MS);
    this.timer.unref();
  }

  ended(failed: boolean, queueMs: number | undefined, backend: string | undefined, outputTokens: number | undefined): void {
    this.requests++;
    if (failed) this.errors++;
    if (queueMs !== undefined && this.waits.length < 10_000) this.waits.push(queueMs);
    if (backend && outputTokens) this.tokens.set(backend, (this.tokens.get(backend) ?? 0) + outputTokens);
  }

  sample(): void {
    const t = Date.now();
    const seconds = Math.max(0.001, (t - this.last) / 1000);
    this.last = t;
    const waits = this.waits.sort((a, b) => a - b);
    const { queueDepth, inFlight } = this.now();
    this.samples.push({ t, queueDepth, inFlight, requests: this.requests, errors: this.errors, waitP50Ms: waits.length ? Math.round(waits[Math.floor(waits.length / 2)]!) : 0 });
    if (this.samples.length > KEEP) this.samples.shift();
    this.rates.clear();
    for (const [b, n] of this.tokens) this.rates.set(b, Math.round((n / seconds) * 10) / 10);
    this.requests = 0;
    this.errors = 0;
    this.waits = [];
    this.tokens = new Map();
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
