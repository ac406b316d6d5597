// A key's limits and budgets across a fleet of instances sharing one Redis (issue 13): its
// request rate, concurrency and token budgets hold for all the instances together, and budgets
// outlive every instance.
import t from 'tap';
import { Redis } from 'ioredis';
import { hashKey } from '../dist/src/auth/keys.js';
import { chat, configFile, post, settled, startGateway, startSims, until } from './helpers.js';
import { startRedis } from './services.js';

const APP = 'ogw_shared-app-00000000000000000000';
const auth = { authorization: `Bearer ${APP}` };

async function fleet(t: Parameters<typeof startSims>[0], limits: string, sim: Parameters<typeof startSims>[2] = {}, extra = '') {
  const redis = await startRedis(t);
  const [s] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 3, parallel: 8, ...sim });
  const file = configFile(t, `backends: [{url: "${s!.url}"}]\nslots_per_backend: 8\nshared: {redis_url: "${redis.url}"}\n${extra}keys:\n  - {name: app, sha256: "${hashKey(APP)}", ${limits}}\n`);
  const a = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const b = await startGateway(t, [], {}, { file, backendsFromFile: true });
  return { redis, sim: s!, file, a, b };
}

t.test('requests_per_minute: 10 through two instances lets 10 through, not 20', async (t) => {
  const { a, b } = await fleet(t, 'requests_per_minute: 10');
  const replies = [];
  for (let i = 0; i < 20; i++) replies.push(await post(i % 2 ? a.url : b.url, '/api/chat', chat(`job ${i}`, { stream: false }), { headers: auth }));
  t.equal(replies.filter((r) => r.status === 200).length, 10, 'ten answered');
  const refused = replies.filter((r) => r.status === 429);
  t.equal(refused.length, 10, 'ten refused, at both instances');
  t.match(refused[0]!.json(), { error: "key 'app' is over its rate of 10 requests per minute" });
  t.ok(Number(refused[0]!.headers['retry-after']) >= 1, 'with Retry-After');
  await settled(a.gateway);
  await settled(b.gateway);
});

t.test('max_concurrent counts the jobs at every instance', async (t) => {
  const { a, b, sim } = await fleet(t, 'max_concurrent: 2');
  sim.hold();
  const one = post(a.url, '/api/chat', chat('one', { stream: false }), { headers: auth });
  const two = post(b.url, '/api/chat', chat('two', { stream: false }), { headers: auth });
  await until(() => sim.waitingAtGate === 2, 'both jobs at the backend');
  const three = await post(a.url, '/api/chat', chat('three', { stream: false }), { headers: auth });
  t.equal(three.status, 429);
  t.match(three.json(), { error: "key 'app' already has 2 job(s) in the gateway, its limit" });
  sim.release();
  t.same([(await one).status, (await two).status], [200, 200]);
  t.equal((await post(b.url, '/api/chat', chat('four', { stream: false }), { headers: auth })).status, 200, 'a slot of the key frees when its job ends');
});

t.test('a day budget spent through one instance is spent at the other, and outlives both', async (t) => {
  const { a, b, redis, file } = await fleet(t, 'tokens_per_day: 60', { tokens: 500, tokenMs: 1 });
  const cut = await post(a.url, '/api/chat', chat('hello'), { headers: auth });
  t.equal(cut.status, 200);
  t.match(cut.text.trim().split('\n').at(-1), /used its budget of 60 tokens for today/, 'the stream at A is cut at the budget');
  await settled(a.gateway);
  const atB = await post(b.url, '/api/chat', chat('again', { stream: false }), { headers: auth });
  t.equal(atB.status, 429, 'B refuses: the budget is the fleet\'s');
  t.match(atB.json(), { error: /used its budget of 60 tokens for today \(UTC\)/ });
  await a.gateway.stop(0);
  await b.gateway.stop(0);
  const c = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const atC = await post(c.url, '/api/chat', chat('after a restart of every instance', { stream: false }), { headers: auth });
  t.equal(atC.status, 429, 'an instance started afresh knows it too (the budget lives in Redis)');
  void redis;
});

t.test('two streams at two instances are cut when their key\'s use together crosses the budget', async (t) => {
  // each reserves little, so both start; then each streams past what it reserved
  const { a, b, redis } = await fleet(t, 'tokens_per_day: 200', { tokens: 1000, tokenMs: 5 }, 'budgets: {output_estimate_tokens: 10}\n');
  const [x, y] = await Promise.all([post(a.url, '/api/chat', chat('left'), { headers: auth }), post(b.url, '/api/chat', chat('right'), { headers: auth })]);
  for (const r of [x, y]) t.match(r.text.trim().split('\n').at(-1), /used its budget of 200 tokens/, 'cut');
  await settled(a.gateway);
  await settled(b.gateway);
  const r = new Redis(redis.url);
  const used = Number(await r.hget('ogw:key:app:budget', 'dayUsed'));
  r.disconnect();
  t.ok(used >= 200 && used < 360, `${used} tokens used in all (each cut alone at 200 would make 400 or more)`);
});
