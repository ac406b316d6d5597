// A counter for the per-request path, as FastHistogram is for the per-chunk one. prom-client's
// Counter hashes its label object on every inc(), even through a bound child (about 4 µs of a
// small answer's CPU); here a series is bound once per distinct label set and an increment adds
// to a number. It registers with a prom-client Registry like any metric and renders in the
// same text format.
import type { Registry } from 'prom-client';

interface Series {
  readonly labels: Record<string, string>;
  value: number;
}

export interface FastCounterOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly registers: readonly Registry[];
}

export class FastCounter<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'counter';
  readonly aggregator = 'sum';
  private readonly labelNames: readonly L[];
  private readonly series = new Map<string, Series>();

  constructor(opts: FastCounterOptions<L>) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    // the registry asks only for name, help, type, aggregator and get()
    for (const r of opts.registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The increment function of one series (made once per label set, then kept by the caller). */
  child(labels: Readonly<Record<L, string>>): (n?: number) => void {
    const id = this.labelNames.map((n) => labels[n]).join('\u0000');
    let s = this.series.get(id);
    if (!s) {
      s = { labels: { ...labels }, value: 0 };
      this.series.set(id, s);
    }
    const series = s;
    return (n = 1) => {
      series.value += n;
    };
  }

  get() {
    const values: { labels: Record<string, string>; value: number }[] = [];
    for (const s of this.series.values()) values.push({ labels: { ...s.labels }, value: s.value });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }
}
