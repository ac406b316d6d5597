// Backends failing in the ways real ones do: refused connections, hangs, deaths, recoveries.
import t from 'tap';
import { chat, get, post, startGateway, startSims, until } from './helpers.js';

t.test('connection refused before the first byte: retried on another backend, nobody fails', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const { url, gateway, logs } = await startGateway(t, sims, { slotsPerBackend: '4' });
  await sims[0]!.down();
  const replies = await Promise.all(Array.from({ length: 6 }, (_, i) => post(url, '/api/chat', chat(`r${i}`), { headers: { 'x-request-id': `r${i}` } })));
  t.same(
    replies.map((r) => r.status),
    Array(6).fill(200),
  );
  t.equal(sims[1]!.stats.completed, 6, 'the live backend served them all');
  const retried = logs.requests().filter((l) => (l['attempts'] as number) > 1);
  t.ok(retried.length > 0, 'some went to the dead one first and were retried');
  for (const l of retried) t.equal(l['backend'], 'sim2');
  t.equal(gateway.registry.all[0]!.healthy, false, 'passive failures took the dead backend out');
  t.same(
    gateway.registry.all.map((b) => b.inFlight),
    [0, 0],
  );
});

t.test('a dead backend leaves rotation after K failed probes and returns after M good ones', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  const { url, gateway, logs } = await startGateway(t, sims, { warmFirst: 'no' });
  const b = gateway.registry.byName('sim1')!;
  const { unhealthyAfter, healthyAfter } = gateway.config.health;
  await sims[0]!.down();
  for (let i = 1; i < unhealthyAfter; i++) {
    t.equal(await gateway.health.probeOnce(b), false);
    t.equal(b.healthy, true, `still in after ${i} failure(s)`);
  }
  await gateway.health.probeOnce(b);
  t.equal(b.healthy, false, `out after ${unhealthyAfter}`);
  const health = await get(url, '/healthz');
  t.equal(health.status, 200, 'healthz stays 200 while one backend is up');
  t.match(health.json(), { status: 'ok', backends: [{ name: 'sim1', healthy: false, last_error: /ECONNREFUSED/ }, { name: 'sim2', healthy: true }] });
  for (let i = 0; i < 4; i++) t.equal((await post(url, '/api/chat', chat('x', { stream: false }))).status, 200);
  t.equal(sims[1]!.stats.requests, 4, 'all work went to the live backend');
  await sims[0]!.up();
  for (let i = 1; i < healthyAfter; i++) {
    await gateway.health.probeOnce(b);
    t.equal(b.healthy, false, `not back after ${i} good probe(s)`);
  }
  await gateway.health.probeOnce(b);
  t.equal(b.healthy, true, `back after ${healthyAfter}`);
  for (let i = 0; i < 4; i++) await post(url, '/api/chat', chat('y', { stream: false }));
  t.ok(sims[0]!.stats.requests > 0, 'the recovered backend takes work again');
  t.ok(logs.lines.some((l) => l['msg'] === 'backend down: out of rotation' && l['backend'] === 'sim1'), 'down transition logged');
  t.ok(logs.lines.some((l) => l['msg'] === 'backend up: back in rotation' && l['backend'] === 'sim1'), 'up transition logged');
});

t.test('probes run on their own, on the interval', async (t) => {
  const [sim] = await startSims(t, 1);
  const { gateway } = await startGateway(t, [sim!], { healthIntervalSeconds: '0.05' });
  await sim!.waitFor(() => (sim!.stats.byPath['/'] ?? 0) >= 3);
  await sim!.down();
  await until(() => !gateway.registry.all[0]!.healthy, 'marked down by the probe loop');
  t.pass('the probe loop took the dead backend out');
});

t.test('healthz: 503 when no backend is healthy', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url, gateway } = await startGateway(t, [sim!]);
  sim!.setFaults({ probeFails: true });
  const b = gateway.registry.all[0]!;
  for (let i = 0; i < gateway.config.health.unhealthyAfter; i++) await gateway.health.probeOnce(b);
  const h = await get(url, '/healthz');
  t.equal(h.status, 503);
  t.match(h.json(), { status: 'unavailable', queue: { depth: 0, size: 100 }, backends: [{ healthy: false, last_error: /answered 500/ }] });
});

t.test('a backend that dies while holding requests with no byte yet: they are re-dispatched', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const { url, gateway, logs } = await startGateway(t, sims);
  sims[0]!.setFaults({ hangBeforeHeaders: true, probeFails: true });
  sims[1]!.hold();
  // the first job lands on sim1 (round robin) and hangs there; the second holds sim2
  const first = post(url, '/api/chat', chat('stuck'), { headers: { 'x-request-id': 'stuck' } });
  await sims[0]!.waitFor(() => sims[0]!.stats.requests === 1);
  const second = post(url, '/api/chat', chat('other'));
  await sims[1]!.waitFor(() => sims[1]!.waitingAtGate === 1);
  const b = gateway.registry.byName('sim1')!;
  for (let i = 0; i < gateway.config.health.unhealthyAfter; i++) await gateway.health.probeOnce(b);
  t.equal(b.healthy, false);
  await sims[0]!.waitFor(() => sims[0]!.stats.cancelled === 1);
  t.pass('the dead backend saw its request withdrawn');
  sims[1]!.release();
  const [r1, r2] = await Promise.all([first, second]);
  t.equal(r1.status, 200, 'the stuck job was answered by the other backend');
  t.match(r1.text, /"done":true/);
  t.equal(r2.status, 200);
  t.match(await logs.requestLine('stuck'), { backend: 'sim2', attempts: 2, status: 200 });
});

t.test('a backend that hangs before headers on generations: 504 at the header timeout, the job withdrawn and never re-run elsewhere; the backend counted as failing', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  sims[0]!.setFaults({ hangBeforeHeaders: true });
  const { url, logs, gateway } = await startGateway(t, sims, { headersTimeoutSeconds: '0.3' });
  const reply = await post(url, '/api/chat', chat('x'), { headers: { 'x-request-id': 'slow' } });
  t.equal(reply.status, 504);
  t.match(await logs.requestLine('slow'), { backend: 'sim1', attempts: 1, code: 'upstream_timeout' });
  await sims[0]!.waitFor(() => sims[0]!.stats.cancelled === 1);
  t.pass('the hung backend saw the request withdrawn');
  t.equal(sims[1]!.stats.requests, 0, 'the other backend never ran it');
  for (let i = 0; i < gateway.config.health.unhealthyAfter - 1; i++) await post(url, '/api/chat', chat(`again ${i}`));
  t.equal(gateway.registry.byName('sim1')!.healthy, false, 'after unhealthy_after header timeouts it is out of rotation');
  t.equal((await post(url, '/api/chat', chat('then'))).status, 200, 'and the next job goes to the other');
});

t.test('every backend fails: the last failure is the answer (502/504), no hang', async (t) => {
  const sims = await startSims(t, 2);
  const { url } = await startGateway(t, sims, { headersTimeoutSeconds: '0.2' });
  for (const s of sims) s.setFaults({ hangBeforeHeaders: true });
  let t0 = performance.now();
  const timedOut = await post(url, '/api/chat', chat('x'));
  t.comment(`timed out in ${Math.round(performance.now() - t0)} ms`);
  t.equal(timedOut.status, 504);
  t.match(timedOut.json(), { error: /no response headers in time/ });
  for (const s of sims) await s.down();
  t0 = performance.now();
  const refused = await post(url, '/v1/chat/completions', chat('x'));
  t.comment(`refused in ${Math.round(performance.now() - t0)} ms`);
  t.ok(refused.status === 502 || refused.status === 503, `refused everywhere: ${refused.status}`);
  t.match(refused.json(), { error: { message: /unreachable|no healthy backend/ } });
});

t.test('non-dispatched routes pass through without taking a slot', async (t) => {
  const [sim] = await startSims(t, 1);
  sim!.hold();
  const { url, gateway } = await startGateway(t, [sim!]);
  const busy = post(url, '/api/chat', chat('holder'));
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const tags = await get(url, '/api/tags');
  t.equal(tags.status, 200, '/api/tags answered while the only slot is busy');
  t.match(tags.json(), { models: [{ name: 'llama3.2:latest' }] });
  const root = await get(url, '/');
  t.equal(root.text, 'Ollama is running');
  t.equal(root.headers['content-type'], 'text/plain; charset=utf-8');
  const show = await post(url, '/api/show', { model: 'llama3.2' });
  t.equal(show.status, 200);
  const missing = await post(url, '/api/show', { model: 'nope' });
  t.equal(missing.status, 404, 'backend statuses pass through');
  t.match(missing.json(), { error: "model 'nope' not found" });
  t.equal(gateway.registry.all[0]!.inFlight, 1, 'only the chat holds the slot');
  sim!.release();
  await busy;
});

t.test("a probe's deadline: the wall clock on a quiet loop, a stall counted as one step", async (t) => {
  const { attentionDeadline } = await import('../dist/src/backends/attention-deadline.js');
  const at = (ms: number, stallMs: number) =>
    new Promise<{ afterStall: boolean; ms: number }>((resolve) => {
      const t0 = performance.now();
      let fired = -1;
      attentionDeadline(ms, () => (fired = performance.now() - t0));
      const until = t0 + stallMs;
      while (performance.now() < until);
      // one more turn of the loop after the stall: the sockets are read, the timers run
      setImmediate(() =>
        setImmediate(() => {
          const afterStall = fired >= 0;
          const wait = (): void => (fired >= 0 ? resolve({ afterStall, ms: fired }) : void setTimeout(wait, 5));
          wait();
        }),
      );
    });
  const quiet = await at(300, 0);
  t.ok(quiet.ms >= 300, `a quiet loop: expired after ${Math.round(quiet.ms)} ms`);
  const stalled = await at(300, 600);
  t.equal(stalled.afterStall, false, 'not expired by a 600 ms stall of a 300 ms deadline');
  t.ok(stalled.ms >= 600 + 300 - 125, `expired ${Math.round(stalled.ms - 600)} ms after the stall (the stall counted as one step at most)`);
});
