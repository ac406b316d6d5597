// A histogram for the hottest path: every relayed chunk of every stream observes its gap.
// prom-client's own Histogram builds and hashes a label object on every observe, even through a
// bound child; here a series is bound once per stream and an observation is a bucket increment,
// with no allocation. It registers with a prom-client Registry like any metric and renders in
// the same text format (cumulative `_bucket{le}`, `_sum`, `_count`).
import type { Registry } from 'prom-client';

interface Series {
  readonly labels: Record<string, string>;
  /** per bucket, not cumulative; the last one is +Inf */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export interface FastHistogramOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly buckets: readonly number[];
  readonly registers: readonly Registry[];
}

export class FastHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  private readonly buckets: readonly number[];
  private readonly labelNames: readonly L[];
  private readonly series = new Map<string, Series>();

  constructor(opts: FastHistogramOptions<L>) {
    this.name = opts.name;
    this.help = opts.help;
    this.buckets = [...opts.buckets].sort((a, b) => a - b);
    this.labelNames = opts.labelNames;
    // the registry asks only for name, help, type, aggregator and get()
    for (const r of opts.registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The observe function of one series (made once, e.g. per stream). */
  child(labels: Readonly<Record<L, string>>): (value: number) => void {
    const id = this.labelNames.map((n) => labels[n]).join('\u0000');
    let s = this.series.get(id);
    if (!s) {
      s = { labels: { ...labels }, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
      this.series.set(id, s);
    }
    const series = s;
    const bounds = this.buckets;
    return (value: number) => {
      let i = 0;
      while (i < bounds.length && value > bounds[i]!) i++;
      series.counts[i]!++;
      series.sum += value;
      series.count++;
    };
  }

  get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { ...s.labels, le }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    this.series.clear();
  }
}
