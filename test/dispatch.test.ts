// The dispatcher as clients and backends see it: slots, FIFO, max wait, queue bounds, work
// conservation and the 499 path when a client leaves.
import t from 'tap';
import { chat, post, startGateway, startSims, until } from './helpers.js';

t.test('never more requests in flight to a backend than its slots (seen by the backends)', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 5, tokenMs: 2, tokens: 5, parallel: 8 });
  const { url, gateway } = await startGateway(t, sims, { slotsPerBackend: '2', queueSize: '100' });
  const replies = await Promise.all(Array.from({ length: 24 }, (_, i) => post(url, '/api/chat', chat(`job ${i}`))));
  t.same(
    replies.map((r) => r.status),
    Array(24).fill(200),
  );
  for (const s of sims) {
    t.ok(s.stats.maxActive <= 2, `backend saw at most 2 at once (saw ${s.stats.maxActive})`);
    t.ok(s.stats.requests > 0, 'both backends got work');
  }
  t.equal(sims[0]!.stats.requests + sims[1]!.stats.requests, 24);
  t.equal(gateway.dispatcher.queueDepth, 0, 'queue empty afterwards');
  t.same(
    gateway.registry.all.map((b) => b.inFlight),
    [0, 0],
    'no leaked slots',
  );
});

t.test('a freed slot goes to the oldest waiter (FIFO), and no job waits while a slot is free', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  sim!.hold();
  const { url, gateway } = await startGateway(t, [sim!], { queueSize: '10' });
  const first = post(url, '/api/chat', chat('job 0', { stream: false }));
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const rest: Promise<unknown>[] = [];
  for (let i = 1; i <= 5; i++) {
    rest.push(post(url, '/api/chat', chat(`job ${i}`, { stream: false })));
    await until(() => gateway.dispatcher.queueDepth === i, `job ${i} queued`);
  }
  t.equal(sim!.stats.requests, 1, 'only one request reached the one-slot backend');
  sim!.release();
  await Promise.all([first, ...rest]);
  t.same(
    sim!.seen.filter((s) => s.path === '/api/chat').map((s) => s.tag),
    ['job 0', 'job 1', 'job 2', 'job 3', 'job 4', 'job 5'],
    'served in arrival order',
  );
  t.equal(sim!.stats.maxActive, 1);
});

t.test('round robin among free backends (warm-first off)', async (t) => {
  const sims = await startSims(t, 3, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  const { url } = await startGateway(t, sims, { warmFirst: 'no' });
  for (let i = 0; i < 6; i++) await post(url, '/api/generate', { model: 'llama3.2', prompt: `p${i}`, stream: false });
  t.same(
    sims.map((s) => s.stats.requests),
    [2, 2, 2],
  );
});

t.test('a waiter is evicted with 503 when its max wait runs out, while the slot is still busy', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  sim!.hold();
  const { url, gateway, logs } = await startGateway(t, [sim!], { maxQueueWaitSeconds: '0.2' });
  const first = post(url, '/api/chat', chat('holder', { stream: false }));
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const waited = await post(url, '/api/chat', chat('waiter', { stream: false }), { headers: { 'x-request-id': 'evict-me' } });
  t.equal(waited.status, 503);
  t.equal(waited.headers['retry-after'], '1');
  t.match(waited.json(), { error: /maximum queue wait/ });
  t.equal(sim!.waitingAtGate, 1, 'the slot was still busy when the waiter was answered');
  t.equal(gateway.dispatcher.counts.queue_timeout, 1);
  const line = await logs.requestLine('evict-me');
  t.match(line, { status: 503, code: 'queue_timeout' });
  t.ok((line['queue_ms'] as number) >= 150, 'logged its queue wait');
  sim!.release();
  t.equal((await first).status, 200);
  t.equal(sim!.seen.filter((s) => s.tag === 'waiter').length, 0, 'the evicted job never reached the backend');
});

t.test('queue full: 503 at once with Retry-After and its own code; OpenAI shape on /v1', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  sim!.hold();
  const { url, gateway } = await startGateway(t, [sim!], { queueSize: '1' });
  const first = post(url, '/api/chat', chat('a', { stream: false }));
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const second = post(url, '/api/chat', chat('b', { stream: false }));
  await until(() => gateway.dispatcher.queueDepth === 1, 'b queued');
  const native = await post(url, '/api/chat', chat('c', { stream: false }));
  t.equal(native.status, 503);
  t.equal(native.headers['retry-after'], '1');
  t.match(native.json(), { error: /queue is full/ });
  const openai = await post(url, '/v1/chat/completions', chat('d'));
  t.equal(openai.status, 503);
  t.match(openai.json(), { error: { message: /queue is full/, type: 'api_error', code: 'queue_full', param: null } });
  t.equal(gateway.dispatcher.counts.queue_full, 2);
  sim!.release();
  t.same([(await first).status, (await second).status], [200, 200]);
});

t.test('queue size 0: busy means 503 at once', async (t) => {
  const [sim] = await startSims(t, 1);
  sim!.hold();
  const { url } = await startGateway(t, [sim!], { queueSize: '0' });
  const first = post(url, '/api/chat', chat('a', { stream: false }));
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  t.equal((await post(url, '/api/chat', chat('b', { stream: false }))).status, 503);
  sim!.release();
  t.equal((await first).status, 200);
});

t.test('client gone while queued: 499, removed from the queue, never reaches a backend', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  sim!.hold();
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  const first = post(url, '/api/chat', chat('holder', { stream: false }));
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const ac = new AbortController();
  const leaving = post(url, '/api/chat', chat('leaver', { stream: false }), { headers: { 'x-request-id': 'leaver' }, signal: ac.signal });
  await until(() => gateway.dispatcher.queueDepth === 1, 'leaver queued');
  ac.abort();
  await t.rejects(leaving);
  await until(() => gateway.dispatcher.queueDepth === 0, 'leaver removed from the queue');
  t.match(await logs.requestLine('leaver'), { status: 499, code: 'client_closed' });
  t.equal(gateway.dispatcher.counts.cancelled_queued, 1);
  sim!.release();
  t.equal((await first).status, 200);
  t.equal(sim!.seen.filter((s) => s.tag === 'leaver').length, 0);
  t.equal(gateway.registry.all[0]!.inFlight, 0);
});

t.test('client gone before the first byte: the backend sees the disconnect, the slot frees, 499', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  sim!.hold();
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  const ac = new AbortController();
  const leaving = post(url, '/api/chat', chat('leaver'), { headers: { 'x-request-id': 'early' }, signal: ac.signal });
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  ac.abort();
  await t.rejects(leaving);
  await sim!.waitFor(() => sim!.stats.cancelled === 1);
  await until(() => gateway.registry.all[0]!.inFlight === 0, 'slot freed');
  t.match(await logs.requestLine('early'), { status: 499, code: 'client_closed', backend: 'sim1' });
  sim!.release();
  t.equal((await post(url, '/api/chat', chat('next', { stream: false }))).status, 200, 'the slot serves the next job');
});

t.test('client gone mid-stream: the upstream is cut at once and the backend stops generating', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 20, tokens: 500 });
  const { url, gateway, logs } = await startGateway(t, [sim!]);
  const ac = new AbortController();
  const { request } = await import('undici');
  const res = await request(`${url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('long')), headers: { 'x-request-id': 'mid' }, signal: ac.signal });
  t.equal(res.statusCode, 200);
  let lines = 0;
  for await (const chunk of res.body) {
    lines += String(chunk).split('\n').filter(Boolean).length;
    if (lines >= 3) break;
  }
  ac.abort();
  await sim!.waitFor(() => sim!.stats.cancelled === 1);
  t.ok(sim!.stats.tokensSent < 100, `generation stopped early (${sim!.stats.tokensSent} of 500 tokens)`);
  await until(() => gateway.registry.all[0]!.inFlight === 0, 'slot freed');
  const line = await logs.requestLine('mid');
  t.match(line, { status: 499, code: 'client_closed' });
  t.ok((line['bytes_out'] as number) > 0, 'bytes relayed before the client left are logged');
});

t.test('no healthy backend: 503 at once, not a wait until max wait', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url, gateway } = await startGateway(t, [sim!], { maxQueueWaitSeconds: '60' });
  const b = gateway.registry.all[0]!;
  await sim!.down();
  for (let i = 0; i < gateway.config.health.unhealthyAfter; i++) await gateway.health.probeOnce(b);
  t.equal(b.healthy, false);
  const reply = await post(url, '/api/chat', chat('x'));
  t.equal(reply.status, 503);
  t.match(reply.json(), { error: 'no healthy backend' });
  t.equal(reply.headers['retry-after'], '1');
});
