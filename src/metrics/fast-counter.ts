// A counter for the per-request path, as FastHistogram is for the per-chunk one. prom-client's
// Counter hashes its label object on every inc(), even through a bound child (about 4 µs of a
// small answer's CPU); here a series is bound once per distinct label set and an increment adds
// to a number. It renders in prom-client's text format like any metric.
import { FastMetric } from './fast-metric.js';

interface Series {
  readonly labels: Record<string, string>;
  value: number;
}

export class FastCounter<L extends string> extends FastMetric<L, Series> {
  readonly type = 'counter';

  /** The increment function of one series (made once per label set, then kept by the caller). */
  child(labels: Readonly<Record<L, string>>): (n?: number) => void {
    const series = this.seriesOf(labels, (l) => ({ labels: l, value: 0 }));
    return (n = 1) => {
      series.value += n;
    };
  }

  protected zero(s: Series): void {
    s.value = 0;
  }

  get() {
    const values: { labels: Record<string, string>; value: number }[] = [];
    for (const s of this.series.values()) values.push({ labels: { ...s.labels }, value: s.value });
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
