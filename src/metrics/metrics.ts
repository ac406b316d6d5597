// Prometheus metrics (prom-client). A leaf module: it imports nothing of the gateway; the
// gateway feeds it events and gives it read-only views to sample at scrape time. Names follow
// the OpenTelemetry gen_ai conventions where one exists (time to first token, time per output
// token, token usage by type); label values are bounded (unknown models become "other", routes
// are a fixed set).
import { VERSION } from '../version.js';
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { FastCounter } from './fast-counter.js';
import { FastHistogram } from './fast-histogram.js';

export interface BackendView {
  readonly name: string;
  readonly inFlight: number;
  readonly slots: number;
  readonly up: boolean;
}

export interface MetricsViews {
  readonly backends: () => readonly BackendView[];
  readonly queueDepth: () => number;
  readonly queueSize: () => number;
  /** jobs waiting per key name (empty in open mode) */
  readonly keyQueueDepth: () => ReadonlyMap<string, number>;
  /** with the ledger in PostgreSQL: rows not yet written there (undefined: no gauge) */
  readonly usageUnwritten?: () => number;
  /** with shared state configured: is it reachable (undefined: not configured, no gauge) */
  readonly sharedUp?: () => boolean;
  /** with shared state configured: what became of this instance's fleet-wide claims and releases (counts since start) */
  readonly sharedCounts?: () => SharedCounts;
}

/** What became of an instance's fleet-wide claims and releases, by result (counts since start). */
export interface SharedCounts {
  readonly claims: Readonly<Record<string, number>>;
  readonly handoffs: Readonly<Record<string, number>>;
}

/** What a finished request tells the metrics. */
export interface EndedRequest {
  readonly route: string;
  /** the key's name ('' without one): keys come from the config, so the label stays bounded */
  readonly key: string;
  readonly status: number;
  readonly code: string | undefined;
  readonly model: string;
  readonly backend: string;
  readonly queueMs: number | undefined;
  readonly ttfbMs: number | undefined;
  readonly durationMs: number;
  readonly attempts: number;
  readonly promptTokens: number | undefined;
  readonly completionTokens: number | undefined;
  /** where a request whose client left was: queued, before_first_byte, streaming */
  readonly cancelledIn: 'queued' | 'before_first_byte' | 'streaming' | undefined;
  /** a streamed generation (its first byte is its first token) */
  readonly streamed: boolean;
}

/** A key's own limits turning a request away (429s), each counted as its own reason. */
const KEY_REFUSALS = ['rate_limited', 'concurrency_limited', 'token_rate_limited', 'budget_exhausted'] as const;
const REJECTIONS = ['queue_full', 'key_queue_full', 'queue_timeout', 'no_healthy_backend', 'shutting_down', ...KEY_REFUSALS] as const;
export type Rejection = (typeof REJECTIONS)[number];

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];
const GAP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56];

export class GatewayMetrics {
  readonly registry = new Registry();
  private readonly requests: FastCounter<'route' | 'status' | 'model' | 'key'>;
  /** (one series, unlabelled: rendered from the start, as prom-client renders it) */
  private readonly queueWait: (seconds: number) => void;
  private readonly ttft: FastHistogram<'backend' | 'model'>;
  private readonly tpot: FastHistogram<'backend' | 'model'>;
  private readonly tokens: FastCounter<'backend' | 'model' | 'type'>;
  private readonly tokensPerSecond: FastHistogram<'backend' | 'model'>;
  private readonly rejections: Counter<'reason'>;
  private readonly keyTokens: FastCounter<'key' | 'type'>;
  private readonly cancellations: Counter<'phase'>;
  /** with the ledger in PostgreSQL */
  private usageRowsDropped: Counter | undefined;
  private readonly retries: Counter;
  private readonly transitions: Counter<'backend' | 'to'>;

  constructor(views: MetricsViews) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, eventLoopMonitoringPrecision: 10 });
    // prom-client names three gauges with a counter's `_total`, which `promtool check metrics`
    // refuses; the handle and request counts they carry are of no use to an operator
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    new Gauge({ name: 'ollama_gateway_build_info', help: 'Always 1: the gateway version and the Node.js it runs on, as labels.', labelNames: ['version', 'node'], registers }).set(
      { version: VERSION, node: process.version },
      1,
    );
    this.requests = new FastCounter({ name: 'ollama_gateway_requests_total', help: 'Requests by route, status, model and key name (empty: open mode or no valid key).', labelNames: ['route', 'status', 'model', 'key'], registers });
    this.queueWait = new FastHistogram({ name: 'ollama_gateway_queue_wait_seconds', help: 'Time a job waited for a slot.', labelNames: [], buckets: LATENCY_BUCKETS, registers }).child({});
    this.ttft = new FastHistogram({
      name: 'gen_ai_server_time_to_first_token_seconds',
      help: 'Time from a streamed generation request arriving to its first token going out (queue wait included).',
      labelNames: ['backend', 'model'],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.tpot = new FastHistogram({
      name: 'gen_ai_server_time_per_output_token_seconds',
      help: 'Gap between two chunks of a streamed generation, as relayed.',
      labelNames: ['backend', 'model'],
      buckets: GAP_BUCKETS,
      registers,
    });
    this.tokens = new FastCounter({ name: 'gen_ai_client_token_usage_total', help: 'Tokens reported by the backends, by type (input: prompt, output: completion).', labelNames: ['backend', 'model', 'type'], registers });
    this.tokensPerSecond = new FastHistogram({
      name: 'ollama_gateway_output_tokens_per_second',
      help: 'Output tokens per second of each generation, after its first token.',
      labelNames: ['backend', 'model'],
      buckets: [1, 5, 10, 20, 40, 60, 80, 100, 150, 200, 400, 800],
      registers,
    });
    this.rejections = new Counter({
      name: 'ollama_gateway_rejections_total',
      help: `Jobs turned away, by reason: ${REJECTIONS.join(', ')}.`,
      labelNames: ['reason'],
      registers,
    });
    for (const reason of REJECTIONS) this.rejections.inc({ reason }, 0);
    this.keyTokens = new FastCounter({ name: 'ollama_gateway_key_tokens_total', help: 'Tokens by key name (empty: open mode) and type (input: prompt, output: completion), as charged.', labelNames: ['key', 'type'], registers });
    this.cancellations = new Counter({ name: 'ollama_gateway_cancellations_total', help: 'Requests whose client left, by phase.', labelNames: ['phase'], registers });
    this.retries = new Counter({ name: 'ollama_gateway_retries_total', help: 'Tries sent to another backend before any byte reached the client.', registers });
    this.transitions = new Counter({ name: 'ollama_gateway_backend_transitions_total', help: 'Backends leaving (to=down) and rejoining (to=up) rotation.', labelNames: ['backend', 'to'], registers });
    new Gauge({
      name: 'ollama_gateway_queue_depth',
      help: 'Jobs waiting for a slot.',
      registers,
      collect() {
        this.set(views.queueDepth());
      },
    });
    const unwritten = views.usageUnwritten;
    if (unwritten) {
      new Gauge({
        name: 'ollama_gateway_usage_rows_unwritten',
        help: 'Usage ledger rows (per day, key and model) waiting to be written to PostgreSQL.',
        registers,
        collect() {
          this.set(unwritten());
        },
      });
      this.usageRowsDropped = new Counter({ name: 'ollama_gateway_usage_rows_dropped_total', help: 'Usage ledger rows dropped because PostgreSQL did not answer for too long.', registers });
    }
    const sharedUp = views.sharedUp;
    if (sharedUp) {
      new Gauge({
        name: 'ollama_gateway_shared_state_up',
        help: '1 while the shared state (Redis) is reachable, 0 while this instance runs on its share of each backend\'s slots.',
        registers,
        collect() {
          this.set(sharedUp() ? 1 : 0);
        },
      });
    }
    const sharedCounts = views.sharedCounts;
    if (sharedCounts) {
      const counted = (name: string, help: string, label: string, of: (c: SharedCounts) => Readonly<Record<string, number>>) =>
        new Counter({
          name,
          help,
          labelNames: [label],
          registers,
          collect() {
            this.reset();
            for (const [value, n] of Object.entries(of(sharedCounts()))) this.inc({ [label]: value }, n);
          },
        });
      counted(
        'ollama_gateway_shared_claims_total',
        "This instance's claims of a slot through Redis, by result: granted, full (no slot free), turn (another instance's job waited first), local (Redis unreachable: granted within this instance's share).",
        'result',
        (c) => c.claims,
      );
      counted(
        'ollama_gateway_shared_handoffs_total',
        'Slots handed straight on to a waiting job at a release, by way: kept (to a job waiting here), given (to one waiting at another instance), received (from another instance).',
        'way',
        (c) => c.handoffs,
      );
    }
    new Gauge({
      name: 'ollama_gateway_queue_size',
      help: 'How many jobs may wait.',
      registers,
      collect() {
        this.set(views.queueSize());
      },
    });
    new Gauge({
      name: 'ollama_gateway_key_queue_depth',
      help: 'Jobs waiting for a slot, by key name (with keys configured).',
      labelNames: ['key'],
      registers,
      collect() {
        this.reset();
        for (const [key, n] of views.keyQueueDepth()) this.set({ key }, n);
      },
    });
    const perBackend = (name: string, help: string, value: (b: BackendView) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['backend'],
        registers,
        collect() {
          this.reset();
          for (const b of views.backends()) this.set({ backend: b.name }, value(b));
        },
      });
    perBackend('ollama_gateway_backend_in_flight', 'Jobs holding a slot on the backend.', (b) => b.inFlight);
    perBackend('ollama_gateway_backend_slots', 'Slots of the backend.', (b) => b.slots);
    perBackend('ollama_gateway_backend_up', '1 while the backend is in rotation.', (b) => (b.up ? 1 : 0));
  }

  /** Per-chunk gaps of one stream go to this observer (labels resolved once per request). */
  gapObserver(backend: string, model: string): (seconds: number) => void {
    return this.series(`tpot\0${backend}\0${model}`, () => this.tpot.child({ backend, model }));
  }

  usageDropped(rows: number): void {
    this.usageRowsDropped?.inc(rows);
  }

  rejected(reason: Rejection): void {
    this.rejections.inc({ reason });
  }

  transition(backend: string, to: 'up' | 'down'): void {
    this.transitions.inc({ backend, to });
  }

  // a request's few label sets repeat: each series' function is bound once, then found by a
  // string key (no label object built or hashed per request)
  private readonly bound = new Map<string, (n: number) => void>();
  private series(key: string, make: () => (n: number) => void): (n: number) => void {
    let f = this.bound.get(key);
    if (!f) {
      f = make();
      this.bound.set(key, f);
    }
    return f;
  }

  requestEnded(r: EndedRequest): void {
    const status = String(r.status);
    this.series(`req\0${r.route}\0${status}\0${r.model}\0${r.key}`, () => this.requests.child({ route: r.route, status, model: r.model, key: r.key }))(1);
    if (r.queueMs !== undefined && r.backend !== '') this.queueWait(r.queueMs / 1000);
    if (r.attempts > 1) this.retries.inc(r.attempts - 1);
    if (r.cancelledIn) this.cancellations.inc({ phase: r.cancelledIn });
    if (r.status === 429 && r.code !== undefined && (KEY_REFUSALS as readonly string[]).includes(r.code)) this.rejected(r.code as Rejection);
    if (r.code === 'shutting_down') this.rejected('shutting_down');
    const bm = `${r.backend}\0${r.model}`;
    if (r.status === 200 && r.streamed && r.ttfbMs !== undefined) this.series(`ttft\0${bm}`, () => this.ttft.child({ backend: r.backend, model: r.model }))(r.ttfbMs / 1000);
    if (r.promptTokens) this.series(`ktok\0${r.key}\0input`, () => this.keyTokens.child({ key: r.key, type: 'input' }))(r.promptTokens);
    if (r.completionTokens) this.series(`ktok\0${r.key}\0output`, () => this.keyTokens.child({ key: r.key, type: 'output' }))(r.completionTokens);
    if (r.promptTokens !== undefined) this.series(`tok\0${bm}\0input`, () => this.tokens.child({ backend: r.backend, model: r.model, type: 'input' }))(r.promptTokens);
    if (r.completionTokens !== undefined) {
      this.series(`tok\0${bm}\0output`, () => this.tokens.child({ backend: r.backend, model: r.model, type: 'output' }))(r.completionTokens);
      const genSeconds = (r.durationMs - (r.ttfbMs ?? 0)) / 1000;
      if (r.streamed && r.completionTokens > 1 && genSeconds > 0) this.series(`tps\0${bm}`, () => this.tokensPerSecond.child({ backend: r.backend, model: r.model }))((r.completionTokens - 1) / genSeconds);
    }
  }

  async render(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
