// The Grafana dashboard in examples/ must only ask for series the gateway really exports.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { chat, get, post, startGateway, startSims } from './helpers.js';

t.test('every series the dashboard queries is in /metrics', async (t) => {
  const dash = JSON.parse(readFileSync(new URL('../examples/grafana/ollama-gateway.json', import.meta.url), 'utf8')) as {
    panels: { type: string; targets?: { expr: string }[] }[];
  };
  const exprs = dash.panels.flatMap((p) => (p.targets ?? []).map((x) => x.expr));
  t.ok(exprs.length > 15, `${exprs.length} queries`);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const { url } = await startGateway(t, [sim!]);
  await post(url, '/api/chat', chat('fill the histograms'));
  // every declared series, with a histogram's _bucket, _sum and _count (a counter with labels has
  // no sample until it first moves, but it is declared)
  const exported = new Set<string>();
  for (const line of (await get(url, '/metrics')).text.split('\n')) {
    const m = /^# TYPE (\S+) (\S+)/.exec(line);
    if (!m) continue;
    exported.add(m[1]!);
    if (m[2] === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) exported.add(m[1]! + suffix);
  }
  const FUNCTIONS = new Set(['sum', 'max', 'rate', 'increase', 'histogram_quantile', 'count', 'by', 'le', 'model', 'backend', 'status', 'reason', 'phase', 'to', 'type', 'output', 'key', 'job', 'instance']);
  for (const e of exprs) {
    const names = (e.replace(/"[^"]*"/g, '').replace(/\$\w+/g, '').match(/[a-z_][a-z0-9_]*/g) ?? []).filter((n) => !FUNCTIONS.has(n) && !/^\d/.test(n) && n.includes('_'));
    for (const n of names) t.ok(exported.has(n), `${n} (in ${e}) is exported`);
  }
});
