// The fast metrics render as prom-client's own would, and a reset zeroes the series the bound
// functions still write to.
import t from 'tap';
import { Counter, Histogram, Registry } from 'prom-client';
import { FastCounter } from '../dist/src/metrics/fast-counter.js';
import { FastHistogram } from '../dist/src/metrics/fast-histogram.js';

t.test("a FastCounter and a FastHistogram render what prom-client's Counter and Histogram render", async (t) => {
  const fast = new Registry();
  const slow = new Registry();
  const fc = new FastCounter({ name: 'c_total', help: 'c', labelNames: ['a', 'b'], registers: [fast] });
  const pc = new Counter({ name: 'c_total', help: 'c', labelNames: ['a', 'b'], registers: [slow] });
  const fh = new FastHistogram({ name: 'h_seconds', help: 'h', labelNames: ['a'], buckets: [0.1, 1, 0.01], registers: [fast] });
  const ph = new Histogram({ name: 'h_seconds', help: 'h', labelNames: ['a'], buckets: [0.01, 0.1, 1], registers: [slow] });
  const x = fc.child({ a: 'x', b: 'y' });
  const z = fc.child({ a: 'x', b: 'z' });
  x();
  x(4);
  z(2);
  pc.inc({ a: 'x', b: 'y' }, 5);
  pc.inc({ a: 'x', b: 'z' }, 2);
  const h = fh.child({ a: 'q' });
  for (const v of [0.005, 0.01, 0.05, 0.5, 2]) {
    h(v);
    ph.observe({ a: 'q' }, v);
  }
  t.equal(await fast.metrics(), await slow.metrics());
});

t.test('a reset zeroes every series, and the functions bound before it count on', async (t) => {
  const r = new Registry();
  const c = new FastCounter({ name: 'c_total', help: 'c', labelNames: ['a'], registers: [r] });
  const h = new FastHistogram({ name: 'h_seconds', help: 'h', labelNames: [], buckets: [1], registers: [r] });
  const inc = c.child({ a: 'x' });
  const observe = h.child({});
  inc(3);
  observe(0.5);
  r.resetMetrics();
  t.match(await r.metrics(), /c_total\{a="x"\} 0\n/);
  t.match(await r.metrics(), /h_seconds_count 0\n/);
  inc();
  observe(2);
  t.match(await r.metrics(), /c_total\{a="x"\} 1\n/);
  t.match(await r.metrics(), /h_seconds_bucket\{le="1"\} 0\n/);
  t.match(await r.metrics(), /h_seconds_bucket\{le="\+Inf"\} 1\n/);
});
