// The fault suite: backends that die, hang and lie, clients that vanish or flood. Each case
// checks what the client saw, what the backend saw, and that the gateway's own accounting
// (slots held, requests waiting) is back to zero afterwards.
import t from 'tap';
import { request } from 'undici';
import { chat, get, post, prng, rawConnect, readAll, settled, startGateway, startSims, until } from './helpers.js';

t.test('backend killed mid-stream: error line at once, slot freed, backend out, later work elsewhere', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 5, tokens: 40 });
  const { url, gateway } = await startGateway(t, sims, { healthIntervalSeconds: '0.05' });
  sims[0]!.setFaults({ killAfterTokens: 5 });
  const t0 = performance.now();
  const reply = await post(url, '/api/chat', chat('first'));
  t.ok(performance.now() - t0 < 1000, 'the client hears within a second');
  t.match(JSON.parse(reply.text.trim().split('\n').pop()!), { error: /connection lost/ });
  await sims[0]!.down();
  await until(() => !gateway.registry.byName('sim1')!.healthy, 'the dead backend is marked down');
  for (let i = 0; i < 4; i++) t.equal((await post(url, '/api/chat', chat(`after ${i}`))).status, 200);
  t.equal(sims[1]!.seen.filter((r) => r.tag?.startsWith('after')).length, 4, 'later requests went to the live backend');
  await settled(gateway);
});

t.test('garbage instead of NDJSON, or a stream with no final chunk: a clear error, nothing hangs', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  sim!.setFaults({ garbage: true });
  const garbage = await post(url, '/api/chat', chat('x'), { headers: { 'x-request-id': 'garbage' } });
  t.match(JSON.parse(garbage.text.trim().split('\n').pop()!), { error: /without its final chunk/ });
  t.match(await logs.requestLine('garbage'), { code: 'upstream_failed' });
  sim!.setFaults({ garbage: false, noFinalChunk: true });
  const short = await post(url, '/api/generate', { model: 'llama3.2', prompt: 'x' });
  const lines = short.text.trim().split('\n');
  t.equal(lines.length, 6, 'five tokens, then the gateway\'s error line');
  t.match(JSON.parse(lines[5]!), { error: /without its final chunk/ });
  const sse = await post(url, '/v1/chat/completions', chat('x', { stream: true }));
  t.match(sse.text, /data: \{"error":\{"message":"backend sim1 ended the stream without its final chunk"/);
  sim!.setFaults({ noFinalChunk: false, errorAfterTokens: 2 });
  const ollamaError = await post(url, '/api/chat', chat('x'));
  const errLines = ollamaError.text.trim().split('\n');
  t.equal(errLines.length, 3, 'a backend that ends with its own error line gets no second one');
  t.match(JSON.parse(errLines[2]!), { error: /unexpected EOF/ });
  await settled(gateway);
});

t.test('a flood of ten times the queue: each gets 200 or a clear 503, none hangs, no slot leaks', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  for (const s of sims) s.hold();
  const { url, gateway } = await startGateway(t, sims, { queueSize: '10' });
  const flood = Array.from({ length: 120 }, (_, i) => post(url, '/api/chat', chat(`f${i}`, { stream: false })));
  await until(() => gateway.dispatcher.counts.queue_full === 108, 'the overflow answered at once');
  t.equal(gateway.dispatcher.queueDepth, 10);
  for (const s of sims) s.release();
  const replies = await Promise.all(flood);
  const statuses = replies.map((r) => r.status);
  t.equal(statuses.filter((s) => s === 200).length, 12, 'two in slots and ten queued were served');
  t.equal(statuses.filter((s) => s === 503).length, 108);
  for (const r of replies.filter((x) => x.status === 503)) t.match(r.json(), { error: /queue is full/ });
  t.ok(sims.every((s) => s.stats.maxActive === 1), 'never more than one in flight per backend');
  await settled(gateway);
});

t.test('a client that leaves in each phase: 499 each time, the backend stops, nothing leaks', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 10, tokens: 200 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  // streaming
  const ac1 = new AbortController();
  const res = await request(`${url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('a')), headers: { 'x-request-id': 'p-stream' }, signal: ac1.signal });
  for await (const _ of res.body) break;
  ac1.abort();
  await sim!.waitFor(() => sim!.stats.cancelled === 1);
  // before the first byte
  sim!.hold();
  const ac2 = new AbortController();
  const early = post(url, '/api/chat', chat('b'), { headers: { 'x-request-id': 'p-early' }, signal: ac2.signal }).catch(() => undefined);
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  // queued
  const ac3 = new AbortController();
  const queued = post(url, '/api/chat', chat('c'), { headers: { 'x-request-id': 'p-queued' }, signal: ac3.signal }).catch(() => undefined);
  await until(() => gateway.dispatcher.queueDepth === 1, 'queued');
  ac3.abort();
  ac2.abort();
  await Promise.all([early, queued]);
  await sim!.waitFor(() => sim!.stats.cancelled === 2);
  sim!.release();
  for (const id of ['p-stream', 'p-early', 'p-queued']) t.match(await logs.requestLine(id), { status: 499, code: 'client_closed' }, id);
  t.equal(sim!.seen.filter((r) => r.tag === 'c').length, 0, 'the queued one never reached the backend');
  await settled(gateway);
});

t.test('SIGHUP-style reload under load: nothing in flight is cut', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 5, tokens: 40, parallel: 8 });
  const { url, gateway } = await startGateway(t, [sims[0]!], { slotsPerBackend: '4', queueSize: '100' });
  const { loadConfig } = await import('../dist/src/config/load.js');
  const load = Array.from({ length: 16 }, (_, i) => post(url, '/api/chat', chat(`l${i}`)));
  await sims[0]!.waitFor(() => sims[0]!.stats.tokensSent > 10);
  gateway.reload(loadConfig({ env: {}, flags: { backends: `sim2=${sims[1]!.url}`, listen: '127.0.0.1:0', slotsPerBackend: '4' } }));
  const replies = await Promise.all(load);
  for (const r of replies) {
    t.equal(r.status, 200);
    t.match(r.text.trim().split('\n').pop()!, /"done":true/);
  }
  t.equal(sims[0]!.stats.cancelled, 0, 'no stream on the removed backend was cut');
  t.ok(sims[1]!.stats.requests > 0, 'queued work went to the new backend');
  await until(() => gateway.registry.all.length === 1, 'the removed backend left once idle');
  await settled(gateway);
});

t.test('fuzz: random methods, paths, headers and bodies never crash the gateway and always get an answer', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const { url, gateway } = await startGateway(t, [sim!], { maxBodyBytes: '65536' });
  const seed = Number(process.env['FUZZ_SEED'] ?? 20261123);
  const rnd = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const methods = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'BREW', 'G\u00e9T', ''];
  const paths = ['/', '/api/chat', '/api/generate', '/api/embed', '/api/tags', '/v1/chat/completions', '/v1/models', '/healthz', '/../../etc/passwd', '/api/%ff%fe', '//api//chat', '/api/chat?x=1', '*', 'http://evil/', '/' + 'a'.repeat(5000)];
  const bodies = ['', '{', '{}', 'null', '[]', '{"model":1}', '{"model":"llama3.2","messages":"x"}', JSON.stringify(chat('ok')), '\u0000\u0001\u0002', 'x'.repeat(70_000)];
  const headerNames = ['content-type', 'content-length', 'transfer-encoding', 'x-request-id', 'connection', 'expect', 'host', 'x-\u00ff'];
  const iterations = 150;
  let answered = 0;
  for (let i = 0; i < iterations; i++) {
    const method = pick(methods);
    const path = pick(paths);
    const body = pick(bodies);
    const headers: string[] = [`Host: fuzz`];
    for (let h = 0; h < Math.floor(rnd() * 4); h++) headers.push(`${pick(headerNames)}: ${pick(['0', '-1', '99999999999', 'chunked', 'close', '100-continue', 'a b', '\t', 'application/json'])}`);
    if (rnd() < 0.7) headers.push(`Content-Length: ${Buffer.byteLength(body, 'latin1')}`);
    const s = await rawConnect(url);
    const out = readAll(s);
    s.write(`${method} ${path} HTTP/1.1\r\n${headers.join('\r\n')}\r\n\r\n`, 'latin1');
    if (body) s.write(body, 'latin1');
    const timer = setTimeout(() => s.destroy(), 2000);
    s.end();
    const text = await out;
    clearTimeout(timer);
    if (/^HTTP\/1\.1 \d{3} /.test(text) || text === '') answered++;
  }
  t.equal(answered, iterations, `every request got an HTTP answer or a clean close (seed ${seed})`);
  t.equal((await get(url, '/healthz')).status, 200, 'the gateway is up');
  t.equal((await post(url, '/api/chat', chat('after the fuzz', { stream: false }))).status, 200, 'and serves');
  await settled(gateway);
});
