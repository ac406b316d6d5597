// A histogram for the hottest path: every relayed chunk of every stream observes its gap.
// prom-client's own Histogram builds and hashes a label object on every observe, even through a
// bound child; here a series is bound once per stream and an observation is a bucket increment,
// with no allocation. It registers with a prom-client Registry like any metric and renders in
// the same text format (cumulative `_bucket{le}`, `_sum`, `_count`).
import { FastMetric, type FastMetricOptions } from './fast-metric.js';

interface Series {
  readonly labels: Record<string, string>;
  /** per bucket, not cumulative; the last one is +Inf */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

export interface FastHistogramOptions<L extends string> extends FastMetricOptions<L> {
  readonly buckets: readonly number[];
}

export class FastHistogram<L extends string> extends FastMetric<L, Series> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];

  constructor(opts: FastHistogramOptions<L>) {
    super(opts);
    this.buckets = [...opts.buckets].sort((a, b) => a - b);
  }

  /** The observe function of one series (made once, e.g. per stream). */
  child(labels: Readonly<Record<L, string>>): (value: number) => void {
    const series = this.seriesOf(labels, (l) => ({ labels: l, counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 }));
    const bounds = this.buckets;
    return (value: number) => {
      let i = 0;
      while (i < bounds.length && value > bounds[i]!) i++;
      series.counts[i]!++;
      series.sum += value;
      series.count++;
    };
  }

  protected zero(s: Series): void {
    s.counts.fill(0);
    s.sum = 0;
    s.count = 0;
  }

  get() {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((le, i) => {
        cumulative += s.counts[i]!;
        values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${this.name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
