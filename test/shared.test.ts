// Many gateways, one fleet (issue 13): instances that share a Redis (a real redis-server on a
// free port) share their backends' slots and one queue order; an instance that dies frees its
// slots when its leases run out; Redis going away and coming back costs no job and no restart.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import t from 'tap';
import { Redis } from 'ioredis';
import { hashKey } from '../dist/src/auth/keys.js';
import { formatStatus } from '../dist/src/ops-client.js';
import { chat, configFile, post, settled, sleep, startGateway, startSims, until } from './helpers.js';
import { startRedis } from './services.js';

const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;
const HEAVY = 'ogw_heavy-0000000000000000000000';
const LIGHT = 'ogw_light-1111111111111111111111';

/** Jobs waiting in the fleet's order, as Redis holds it. */
async function fleetQueued(url: string): Promise<number> {
  const r = new Redis(url);
  try {
    return (await r.zcard('ogw:queue:0')) + (await r.zcard('ogw:queue:1'));
  } finally {
    r.disconnect();
  }
}

/** What the fleet keeps per flow: its virtual finish tag and its waiting count. */
async function flowState(url: string): Promise<{ tags: Record<string, string>; waiting: Record<string, string> }> {
  const r = new Redis(url);
  try {
    return { tags: await r.hgetall('ogw:flowtags'), waiting: await r.hgetall('ogw:waiting') };
  } finally {
    r.disconnect();
  }
}

t.test('two instances in front of one-slot backends: no backend ever sees two jobs at once', async (t) => {
  const redis = await startRedis(t);
  const sims = await startSims(t, 2, { ttftMs: 5, tokenMs: 2, tokens: 5, parallel: 1 });
  const flags = { slotsPerBackend: '1', queueSize: '100', redisUrl: redis.url };
  const a = await startGateway(t, sims, flags);
  const b = await startGateway(t, sims, flags);
  const replies = await Promise.all(Array.from({ length: 32 }, (_, i) => post(i % 2 ? a.url : b.url, '/api/chat', chat(`job ${i}`))));
  t.same(
    replies.map((r) => r.status),
    Array.from({ length: 32 }, () => 200),
    'every stream answered',
  );
  t.ok(replies.every((r) => r.text.includes('"done":true')), 'every stream whole');
  t.same(
    sims.map((s) => s.stats.maxActive),
    [1, 1],
    'each simulator saw at most one job at a time',
  );
  t.ok(sims.every((s) => s.stats.completed > 0), 'both backends worked');
  await until(() => a.gateway.shared!.instances === 2, 'A has seen B at a heartbeat');
  const health = (await (await fetch(`${a.url}/healthz`)).json()) as { shared: unknown };
  t.match(health.shared, { redis: 'up', instances: 2 }, '/healthz tells the shared state and the instances');
  t.match((await a.gateway.metrics.render()).body, /ollama_gateway_shared_state_up 1\n/);
  // what the fleet gate did: 32 jobs on two one-slot backends, each begun by a claim or a handoff
  const counted = async (g: typeof a, name: string, label: string) => {
    const out: Record<string, number> = {};
    for (const m of (await g.gateway.metrics.render()).body.matchAll(new RegExp(`^${name}\\{${label}="(\\w+)"\\} (\\d+)$`, 'gm'))) out[m[1]!] = Number(m[2]);
    return out;
  };
  const claims = [await counted(a, 'ollama_gateway_shared_claims_total', 'result'), await counted(b, 'ollama_gateway_shared_claims_total', 'result')];
  const handoffs = [await counted(a, 'ollama_gateway_shared_handoffs_total', 'way'), await counted(b, 'ollama_gateway_shared_handoffs_total', 'way')];
  const sum = (xs: Record<string, number>[], k: string) => xs.reduce((n, x) => n + (x[k] ?? 0), 0);
  t.equal(sum(claims, 'granted') + sum(handoffs, 'kept') + sum(handoffs, 'received'), 32, 'every job began on a granted claim or a slot handed on (/metrics)');
  t.equal(sum(handoffs, 'given'), sum(handoffs, 'received'), 'each slot one instance gave, the other received');
  t.equal(sum(claims, 'local'), 0, 'no claim went without Redis');
  t.match(formatStatus(a.gateway.statusReport() as Parameters<typeof formatStatus>[0], a.url), /\nshared: one of 2 instance\(s\) sharing slots, queue order, limits and budgets through Redis/, '`ollama-gateway status` says so');
  await settled(a.gateway);
  await settled(b.gateway);
});

t.test('one queue order: a job queued at A first is served before a job queued at B later', async (t) => {
  const redis = await startRedis(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  sim!.hold();
  const flags = { slotsPerBackend: '1', queueSize: '100', redisUrl: redis.url };
  const a = await startGateway(t, [sim!], flags);
  const b = await startGateway(t, [sim!], flags);
  // B holds the slot; A queues first, B second: when B's job ends, B's own waiter is younger
  const first = post(b.url, '/api/chat', chat('holding', { stream: false }));
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  const atA = post(a.url, '/api/chat', chat('queued at A', { stream: false }));
  await until(() => a.gateway.dispatcher.queueDepth === 1, 'A has a job waiting');
  while ((await fleetQueued(redis.url)) < 1) await sleep(5);
  const atB = post(b.url, '/api/chat', chat('queued at B', { stream: false }));
  while ((await fleetQueued(redis.url)) < 2) await sleep(5);
  for (let i = 0; i < 3; i++) {
    await sim!.waitFor(() => sim!.waitingAtGate === 1);
    sim!.releaseOne();
  }
  await Promise.all([first, atA, atB]);
  t.same(
    sim!.seen.filter((r) => r.path === '/api/chat').map((r) => r.tag),
    ['holding', 'queued at A', 'queued at B'],
    'served in the order they queued, whichever instance they came through',
  );
  t.equal(sim!.stats.maxActive, 1);
});

t.test("fair across instances: a light key's job is not stuck behind a heavy key's flood at the other instance", async (t) => {
  const redis = await startRedis(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  sim!.hold();
  const file = configFile(
    t,
    `backends: [{url: "${sim!.url}"}]\nslots_per_backend: 1\nqueue: {size: 1000}\nshared: {redis_url: "${redis.url}"}\nkeys:\n  - {name: heavy, sha256: "${hashKey(HEAVY)}"}\n  - {name: light, sha256: "${hashKey(LIGHT)}"}\n`,
  );
  const a = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const b = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const heavy = Array.from({ length: 12 }, (_, i) => post(a.url, '/api/chat', chat(`heavy ${i}`, { stream: false }), { headers: { authorization: `Bearer ${HEAVY}` } }));
  await until(() => a.gateway.dispatcher.queueDepth === 11, 'eleven heavy jobs waiting at A');
  while ((await fleetQueued(redis.url)) < 11) await sleep(5);
  const light = post(b.url, '/api/chat', chat('light', { stream: false }), { headers: { authorization: `Bearer ${LIGHT}` } });
  while ((await fleetQueued(redis.url)) < 12) await sleep(5);
  for (let i = 0; i < 13; i++) {
    await sim!.waitFor(() => sim!.waitingAtGate === 1);
    sim!.releaseOne();
  }
  const replies = await Promise.all([...heavy, light]);
  t.ok(replies.every((r) => r.status === 200), 'all answered');
  const order = sim!.seen.filter((r) => r.path === '/api/chat').map((r) => r.tag);
  t.ok(order.indexOf('light') <= 2, `the light job went at position ${order.indexOf('light')} of 13 (one FIFO across instances: 12)`);
  t.same(
    order.filter((x) => x !== 'light'),
    Array.from({ length: 12 }, (_, i) => `heavy ${i}`),
    'FIFO within a key',
  );
  // a flow with nothing waiting keeps no tag (it would start from the virtual time anyway): the
  // hash does not grow with every flow ever seen
  t.same(await flowState(redis.url), { tags: {}, waiting: {} }, 'no flow state left once every job is served');
});

t.test('an instance killed mid-stream frees its slot when its lease runs out, not before', async (t) => {
  const redis = await startRedis(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 50, tokens: 400 });
  const file = configFile(t, `backends: [{url: "${sim!.url}"}]\nslots_per_backend: 1\nshared: {redis_url: "${redis.url}", lease_seconds: 2}\nlisten: "127.0.0.1:0"\nlog: {level: info}\n`);
  const child = spawn(process.execPath, [BIN, 'serve', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = await new Promise<string>((resolve) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"listen":"([^"]+)"/.exec(line);
      if (m) resolve(`http://${m[1]}`);
    });
  });
  const other = await startGateway(t, [], {}, { file, backendsFromFile: true });
  // a stream through the child holds the only slot
  const res = await fetch(`${url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('long')) });
  const reader = res.body!.getReader();
  await reader.read();
  child.kill('SIGKILL');
  await sim!.waitFor(() => sim!.stats.active === 0);
  const killedAt = performance.now();
  const next = post(other.url, '/api/chat', chat('next', { stream: false, options: { num_predict: 1 } }));
  await until(() => other.gateway.dispatcher.queueDepth === 1, 'the other instance waits for the slot');
  await sleep(500);
  t.equal(sim!.stats.requests, 1, 'the dead instance\'s lease still holds the slot');
  const reply = await next;
  t.equal(reply.status, 200, 'then the other instance uses it');
  const waited = performance.now() - killedAt;
  t.ok(waited >= 1000, `served ${Math.round(waited)} ms after the kill (lease 2 s, renewed a third of the way)`);
  t.equal(sim!.stats.maxActive, 1);
});

t.test('Redis stopped and started again under load: no crash, no lost job, no backend past its slots, back without a restart', async (t) => {
  const redis = await startRedis(t);
  const sims = await startSims(t, 2, { ttftMs: 2, tokenMs: 3, tokens: 20, parallel: 2 });
  const flags = { slotsPerBackend: '2', queueSize: '1000', redisUrl: redis.url };
  const a = await startGateway(t, sims, flags);
  const b = await startGateway(t, sims, flags);
  await until(() => a.gateway.shared!.instances === 2 && b.gateway.shared!.instances === 2, 'both instances see each other');
  const jobs: Promise<{ status: number; text: string }>[] = [];
  let sending = true;
  const load = (async () => {
    for (let i = 0; sending; i++) {
      jobs.push(post(i % 2 ? a.url : b.url, '/api/chat', chat(`job ${i}`)));
      await sleep(8);
    }
  })();
  await sleep(300);
  await redis.stop();
  await until(() => !a.gateway.shared!.up && !b.gateway.shared!.up, 'both instances see Redis gone');
  t.match((await a.gateway.metrics.render()).body, /ollama_gateway_shared_state_up 0\n/, 'the gauge says so');
  t.match(formatStatus(a.gateway.statusReport() as Parameters<typeof formatStatus>[0], a.url), /\nshared: REDIS UNREACHABLE/, 'and `ollama-gateway status`');
  t.match(a.logs.lines.find((l) => /Redis unreachable/.test(String(l['msg']))), { level: 40 }, 'one warning in the log');
  await sleep(400);
  await redis.start();
  await until(() => a.gateway.shared!.up && b.gateway.shared!.up, 'both rejoin without a restart', 10_000);
  await sleep(300);
  sending = false;
  await load;
  const replies = await Promise.all(jobs);
  t.ok(replies.length > 50, `${replies.length} jobs sent across the outage`);
  t.same(
    replies.filter((r) => r.status !== 200 || !r.text.includes('"done":true')).length,
    0,
    'every job answered whole',
  );
  t.ok(sims.every((s) => s.stats.maxActive <= 2), `no backend past its 2 slots (${sims.map((s) => s.stats.maxActive).join(', ')})`);
  const health = (await (await fetch(`${a.url}/healthz`)).json()) as { shared: { redis: string } };
  t.equal(health.shared.redis, 'up');
  await settled(a.gateway);
  await settled(b.gateway);
});

t.test("the queue's bounds hold fleet-wide: queue.size and a key's max_queued count every instance's waiters", async (t) => {
  const redis = await startRedis(t);
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  sim!.hold();
  const file = configFile(
    t,
    `backends: [{url: "${sim!.url}"}]\nslots_per_backend: 1\nqueue: {size: 4}\nshared: {redis_url: "${redis.url}"}\nkeys:\n  - {name: heavy, sha256: "${hashKey(HEAVY)}", max_queued: 2}\n  - {name: light, sha256: "${hashKey(LIGHT)}"}\n`,
  );
  const a = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const b = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const as = (key: string) => ({ headers: { authorization: `Bearer ${key}` } });
  const jobs = [post(a.url, '/api/chat', chat('running', { stream: false }), as(HEAVY))];
  await sim!.waitFor(() => sim!.waitingAtGate === 1);
  jobs.push(post(a.url, '/api/chat', chat('heavy at A', { stream: false }), as(HEAVY)));
  while ((await fleetQueued(redis.url)) < 1) await sleep(5);
  jobs.push(post(b.url, '/api/chat', chat('heavy at B', { stream: false }), as(HEAVY)));
  while ((await fleetQueued(redis.url)) < 2) await sleep(5);
  const third = await post(b.url, '/api/chat', chat('one heavy too many', { stream: false }), as(HEAVY));
  t.equal(third.status, 429, "a key's max_queued counts its waiters at both instances");
  t.match(third.json(), { error: "'heavy' already has 2 job(s) waiting, its limit" });
  jobs.push(post(a.url, '/api/chat', chat('light at A', { stream: false }), as(LIGHT)));
  while ((await fleetQueued(redis.url)) < 3) await sleep(5);
  jobs.push(post(b.url, '/api/chat', chat('light at B', { stream: false }), as(LIGHT)));
  while ((await fleetQueued(redis.url)) < 4) await sleep(5);
  const full = await post(a.url, '/api/chat', chat('one too many', { stream: false }), as(LIGHT));
  t.equal(full.status, 503, 'queue.size counts the waiters at both instances');
  t.match(full.json(), { error: /wait queue is full \(4\)/ });
  sim!.release();
  t.same(
    (await Promise.all(jobs)).map((r) => r.status),
    [200, 200, 200, 200, 200],
    'the jobs that waited are served',
  );
  t.equal(await fleetQueued(redis.url), 0, 'and the fleet queue is empty again');
  t.same(await flowState(redis.url), { tags: {}, waiting: {} }, 'and no flow state is left');
});
