// /metrics as Prometheus scrapes it: the series an operator alerts on, moving as the fleet works.
import t from 'tap';
import { request } from 'undici';
import { chat, get, post, settled, startGateway, startSims, until } from './helpers.js';

function value(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

t.test('the series exist and count what happened', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 2, tokens: 5 });
  const { url, gateway } = await startGateway(t, sims, { queueSize: '1' });
  for (let i = 0; i < 3; i++) await post(url, '/api/chat', chat(`s${i}`));
  await post(url, '/v1/chat/completions', chat('o', { stream: true, stream_options: { include_usage: true } }));
  await post(url, '/api/chat', chat('x', { model: 'made-up' }));
  // a full queue: hold both backends, fill the one waiting place, then one more
  for (const s of sims) s.hold();
  const held = [post(url, '/api/chat', chat('h1', { stream: false })), post(url, '/api/chat', chat('h2', { stream: false }))];
  await until(() => sims.every((s) => s.waitingAtGate === 1), 'both busy');
  const queued = post(url, '/api/chat', chat('q', { stream: false }));
  await until(() => gateway.dispatcher.queueDepth === 1, 'one waiting');
  t.equal((await post(url, '/api/chat', chat('full', { stream: false }))).status, 503);
  const mid = await get(url, '/metrics');
  t.equal(mid.status, 200);
  t.match(mid.headers['content-type'], /text\/plain; version=0\.0\.4/);
  t.equal(value(mid.text, 'ollama_gateway_queue_depth'), 1);
  t.equal(value(mid.text, 'ollama_gateway_queue_size'), 1);
  t.equal(value(mid.text, 'ollama_gateway_backend_in_flight{backend="sim1"}'), 1);
  t.equal(value(mid.text, 'ollama_gateway_backend_slots{backend="sim2"}'), 1);
  t.equal(value(mid.text, 'ollama_gateway_backend_up{backend="sim1"}'), 1);
  t.equal(value(mid.text, 'ollama_gateway_rejections_total{reason="queue_full"}'), 1);
  for (const s of sims) s.release();
  await Promise.all([...held, queued]);
  await settled(gateway);
  const m = (await get(url, '/metrics')).text;
  t.equal(value(m, 'ollama_gateway_requests_total{route="/api/chat",status="200",model="llama3.2:latest",key=""}'), 6);
  t.equal(value(m, 'ollama_gateway_requests_total{route="/api/chat",status="404",model="other",key=""}'), 1, 'an unknown model is "other", not a new label');
  const sum = (prefix: string) => m.split('\n').filter((l) => l.startsWith(prefix)).reduce((n, l) => n + Number(l.split(' ')[1]), 0);
  t.equal(sum('gen_ai_server_time_to_first_token_seconds_count{'), 4, 'one TTFT per streamed generation');
  const gaps = m.split('\n').filter((l) => l.startsWith('gen_ai_server_time_per_output_token_seconds_count')).reduce((n, l) => n + Number(l.split(' ')[1]), 0);
  t.ok(gaps >= 4 * 4, `inter-chunk gaps observed (${gaps})`);
  const series = 'backend="sim1",model="llama3.2:latest"';
  // (le first, as prom-client orders a histogram's labels)
  const buckets = m.split('\n').filter((l) => l.startsWith('gen_ai_server_time_per_output_token_seconds_bucket{le=') && l.includes(`,${series}}`)).map((l) => Number(l.split(' ')[1]));
  t.equal(buckets.length, 13, 'twelve bounds and +Inf');
  t.ok(buckets.every((v, i) => i === 0 || v >= buckets[i - 1]!), `cumulative buckets (${buckets.join(' ')})`);
  t.equal(buckets.at(-1), value(m, `gen_ai_server_time_per_output_token_seconds_count{${series}}`), '+Inf is the count');
  t.ok(value(m, `gen_ai_server_time_per_output_token_seconds_sum{${series}}`)! > 0);
  const out = m.split('\n').filter((l) => l.startsWith('gen_ai_client_token_usage_total{') && l.includes('type="output"')).reduce((n, l) => n + Number(l.split(' ')[1]), 0);
  t.equal(out, 6 * 5 + 5, 'output tokens as the backends reported them');
  t.ok(value(m, 'ollama_gateway_queue_wait_seconds_count')! >= 7);
  t.match(m, /nodejs_eventloop_lag_p99_seconds/, 'event-loop delay');
  t.match(m, /process_resident_memory_bytes/, 'the default process metrics');
});

t.test('cancellations by phase, retries and health transitions', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 10, tokens: 200 });
  const { url, gateway } = await startGateway(t, sims, { warmFirst: 'no' });
  const ac = new AbortController();
  const res = await request(`${url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('a')), signal: ac.signal });
  for await (const _ of res.body) break;
  ac.abort();
  await sims[0]!.waitFor(() => sims[0]!.stats.cancelled + sims[1]!.stats.cancelled === 1).catch(() => sims[1]!.waitFor(() => sims[1]!.stats.cancelled === 1));
  await sims[1]!.down();
  for (let i = 0; i < 3; i++) await post(url, '/api/chat', chat(`r${i}`, { options: { num_predict: 1 } }));
  for (let i = 0; i < gateway.config.health.unhealthyAfter; i++) await gateway.health.probeOnce(gateway.registry.byName('sim2')!);
  await settled(gateway);
  const m = (await get(url, '/metrics')).text;
  t.equal(value(m, 'ollama_gateway_cancellations_total{phase="streaming"}'), 1);
  t.ok(value(m, 'ollama_gateway_retries_total')! >= 1, 'a refused try went elsewhere');
  t.equal(value(m, 'ollama_gateway_backend_transitions_total{backend="sim2",to="down"}'), 1);
  t.equal(value(m, 'ollama_gateway_backend_up{backend="sim2"}'), 0);
});

t.test('a separate metrics listener serves /metrics alone', async (t) => {
  const [sim] = await startSims(t, 1);
  const { gateway } = await startGateway(t, [sim!], { metricsListen: '127.0.0.1:0' });
  const a = gateway.metricsAddress!;
  const r = await get(`http://127.0.0.1:${a.port}`, '/metrics');
  t.equal(r.status, 200);
  t.match(r.text, /ollama_gateway_queue_depth 0/);
  t.equal((await get(`http://127.0.0.1:${a.port}`, '/api/tags')).status, 404, 'nothing else there');
});
