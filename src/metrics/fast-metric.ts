// What the fast metrics share: a prom-client-compatible metric (name, help, type, aggregator,
// get()) whose series are found by their label values once, when a caller binds one, and then
// updated through the bound function alone.
import type { Registry } from 'prom-client';

export interface FastMetricOptions<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly registers: readonly Registry[];
}

export abstract class FastMetric<L extends string, S extends { readonly labels: Record<string, string> }> {
  readonly name: string;
  readonly help: string;
  abstract readonly type: string;
  readonly aggregator = 'sum';
  protected readonly series = new Map<string, S>();
  private readonly labelNames: readonly L[];

  constructor(opts: FastMetricOptions<L>) {
    this.name = opts.name;
    this.help = opts.help;
    this.labelNames = opts.labelNames;
    // the registry asks only for name, help, type, aggregator and get()
    for (const r of opts.registers) r.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  /** The series of these label values (made on first use). */
  protected seriesOf(labels: Readonly<Record<L, string>>, make: (labels: Record<string, string>) => S): S {
    const id = this.labelNames.map((n) => labels[n]).join('\u0000');
    let s = this.series.get(id);
    if (!s) {
      s = make({ ...labels });
      this.series.set(id, s);
    }
    return s;
  }

  /** Every series back to zero (a registry's resetMetrics()); the functions callers hold stay bound to them. */
  reset(): void {
    for (const s of this.series.values()) this.zero(s);
  }

  protected abstract zero(series: S): void;
}
