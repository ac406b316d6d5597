// Fair queueing between keys: one FIFO per key (or per user of a key that names a trusted user
// header), served weighted-fair; a per-key cap on waiting jobs. Checked as an order of events.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { chat, post, settled, startGateway, startSims, until } from './helpers.js';

const HEAVY = 'ogw_heavy-0000000000000000000000';
const LIGHT = 'ogw_light-1111111111111111111111';
const WEBUI = 'ogw_webui-2222222222222222222222';

async function fleet(t: Parameters<typeof startSims>[0], keys: string) {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 1 });
  sim!.hold();
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `backends: [{url: "http://127.0.0.1:1"}]\nqueue: {size: 1000}\nkeys:\n${keys}`);
  return { sim: sim!, ...(await startGateway(t, [sim!], {}, { file })) };
}

/** Let the held jobs through one at a time, in the order the gateway sends them. */
async function drainOneByOne(sim: Awaited<ReturnType<typeof fleet>>['sim'], n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    await sim.waitFor(() => sim.waitingAtGate === 1);
    sim.releaseOne();
  }
}

const KEYS = `  - {name: heavy, sha256: "${hashKey(HEAVY)}"}\n  - {name: light, sha256: "${hashKey(LIGHT)}"}\n`;

t.test('a key that queued many jobs delays another key\'s single job by about one job', async (t) => {
  const { url, sim, gateway } = await fleet(t, KEYS);
  const heavy = Array.from({ length: 10 }, (_, i) => post(url, '/api/chat', chat(`heavy ${i}`, { stream: false }), { headers: { authorization: `Bearer ${HEAVY}` } }));
  await until(() => gateway.dispatcher.queueDepth === 9, 'nine heavy jobs waiting');
  const light = post(url, '/api/chat', chat('light', { stream: false }), { headers: { authorization: `Bearer ${LIGHT}` } });
  await until(() => gateway.dispatcher.queueDepth === 10, 'the light job waiting too');
  const { body } = await gateway.metrics.render();
  t.match(body, /ollama_gateway_key_queue_depth\{key="heavy"\} 9\n/, 'queue depth per key on /metrics');
  t.match(body, /ollama_gateway_key_queue_depth\{key="light"\} 1\n/);
  await drainOneByOne(sim, 11);
  await Promise.all([...heavy, light]);
  const order = sim.seen.filter((r) => r.path === '/api/chat').map((r) => r.tag);
  t.ok(order.indexOf('light') <= 2, `the light job went at position ${order.indexOf('light')} of 11 (FIFO: 10)`);
  t.same(
    order.filter((x) => x !== 'light'),
    Array.from({ length: 10 }, (_, i) => `heavy ${i}`),
    'FIFO within a key',
  );
  await settled(gateway);
});

t.test('weights: a key of weight 2 gets two slots for each one of a key of weight 1', async (t) => {
  const keys = `  - {name: heavy, sha256: "${hashKey(HEAVY)}", weight: 2}\n  - {name: light, sha256: "${hashKey(LIGHT)}", weight: 1}\n`;
  const { url, sim, gateway } = await fleet(t, keys);
  const holder = post(url, '/api/chat', chat('holder', { stream: false }), { headers: { authorization: `Bearer ${LIGHT}` } });
  await sim.waitFor(() => sim.waitingAtGate === 1);
  const jobs: Promise<unknown>[] = [];
  for (let i = 0; i < 6; i++) {
    jobs.push(post(url, '/api/chat', chat(`a${i}`, { stream: false }), { headers: { authorization: `Bearer ${HEAVY}` } }));
    jobs.push(post(url, '/api/chat', chat(`b${i}`, { stream: false }), { headers: { authorization: `Bearer ${LIGHT}` } }));
  }
  await until(() => gateway.dispatcher.queueDepth === 12, 'all waiting');
  await drainOneByOne(sim, 13);
  await Promise.all([holder, ...jobs]);
  const first9 = sim.seen.filter((r) => r.path === '/api/chat' && r.tag !== 'holder').slice(0, 9).map((r) => r.tag![0]);
  t.equal(first9.filter((x) => x === 'a').length, 6, `weight 2 took 6 of the first 9 slots (${first9.join('')})`);
});

t.test('a per-key cap on waiting jobs: 429 key_queue_full', async (t) => {
  const keys = `  - {name: heavy, sha256: "${hashKey(HEAVY)}", max_queued: 2}\n`;
  const { url, sim, gateway } = await fleet(t, keys);
  const h = { authorization: `Bearer ${HEAVY}` };
  const jobs = [0, 1, 2].map((i) => post(url, '/api/chat', chat(`j${i}`, { stream: false }), { headers: h }));
  await sim.waitFor(() => sim.waitingAtGate === 1);
  await new Promise((r) => setTimeout(r, 50));
  const over = await post(url, '/api/chat', chat('over', { stream: false }), { headers: h });
  t.equal(over.status, 429);
  t.equal(over.headers['retry-after'], '1');
  t.match(over.json(), { error: /already has 2 job\(s\) waiting/ });
  t.same([gateway.dispatcher.counts.key_queue_full, gateway.dispatcher.counts.queue_full], [1, 0], 'counted as its own kind of rejection');
  sim.release();
  await Promise.all(jobs);
});

t.test('Open WebUI: a key with a trusted user header is fair between its users; other keys cannot use the header', async (t) => {
  const keys = `  - {name: webui, sha256: "${hashKey(WEBUI)}", fairness_header: X-OpenWebUI-User-Id}\n  - {name: heavy, sha256: "${hashKey(HEAVY)}"}\n`;
  const { url, sim, gateway, logs } = await fleet(t, keys);
  const as = (user: string) => ({ authorization: `Bearer ${WEBUI}`, 'x-openwebui-user-id': user });
  const busy = Array.from({ length: 6 }, (_, i) => post(url, '/api/chat', chat(`alice ${i}`, { stream: false }), { headers: as('alice') }));
  await until(() => gateway.dispatcher.queueDepth === 5, 'alice queued');
  const bob = post(url, '/api/chat', chat('bob', { stream: false }), { headers: { ...as('bob'), 'x-request-id': 'bob' } });
  await until(() => gateway.dispatcher.queueDepth === 6, 'bob queued');
  await drainOneByOne(sim, 7);
  await Promise.all([...busy, bob]);
  const order = sim.seen.filter((r) => r.path === '/api/chat').map((r) => r.tag);
  t.ok(order.indexOf('bob') <= 2, `bob went at position ${order.indexOf('bob')} (FIFO: 6)`);
  t.match(await logs.requestLine('bob'), { key: 'webui', flow: 'webui/bob' }, 'the log names the user flow');

  // a key without the setting: the header changes nothing, one FIFO
  const heavyJobs = Array.from({ length: 4 }, (_, i) => post(url, '/api/chat', chat(`h ${i}`, { stream: false }), { headers: { authorization: `Bearer ${HEAVY}`, 'x-openwebui-user-id': 'x' } }));
  await until(() => gateway.dispatcher.queueDepth === 3, 'heavy queued');
  const spoof = post(url, '/api/chat', chat('spoof', { stream: false }), { headers: { authorization: `Bearer ${HEAVY}`, 'x-openwebui-user-id': 'other' } });
  await until(() => gateway.dispatcher.queueDepth === 4, 'spoof queued');
  await drainOneByOne(sim, 5);
  await Promise.all([...heavyJobs, spoof]);
  const order2 = sim.seen.filter((r) => r.path === '/api/chat').map((r) => r.tag).slice(7);
  t.equal(order2.indexOf('spoof'), 4, 'a key without fairness_header cannot jump its own queue');
});

t.test('priority classes: an interactive key\'s job goes before a batch key\'s earlier ones', async (t) => {
  const keys = `  - {name: heavy, sha256: "${hashKey(HEAVY)}", priority: batch}\n  - {name: light, sha256: "${hashKey(LIGHT)}"}\n`;
  const { url, sim, gateway } = await fleet(t, keys);
  const batch = Array.from({ length: 5 }, (_, i) => post(url, '/api/chat', chat(`batch ${i}`, { stream: false }), { headers: { authorization: `Bearer ${HEAVY}` } }));
  await until(() => gateway.dispatcher.queueDepth === 4, 'four batch jobs waiting');
  const interactive = [0, 1].map((i) => post(url, '/api/chat', chat(`interactive ${i}`, { stream: false }), { headers: { authorization: `Bearer ${LIGHT}` } }));
  await until(() => gateway.dispatcher.queueDepth === 6, 'the interactive jobs waiting too');
  await drainOneByOne(sim, 7);
  await Promise.all([...batch, ...interactive]);
  const order = sim.seen.filter((r) => r.path === '/api/chat').map((r) => r.tag);
  t.same(order, ['batch 0', 'interactive 0', 'interactive 1', 'batch 1', 'batch 2', 'batch 3', 'batch 4'], 'every waiting interactive job first, FIFO within each');
  await settled(gateway);
});
