// Warm-first routing: a job goes where its model is loaded, FIFO bends by at most the skew for
// it, and runner options that force a reload count as another model.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { chat, post, settled, startGateway, until } from './helpers.js';
import { Simulator } from '../dist/src/simulator/simulator.js';

/** Two of each, in turn: round robin puts every model on every backend. */
async function trace(url: string): Promise<void> {
  for (let i = 0; i < 4; i++) {
    for (const model of ['llama3.2', 'llama3.2', 'qwen2.5:0.5b', 'qwen2.5:0.5b']) await post(url, '/api/chat', chat(`${model} ${i}`, { model, stream: false }));
  }
}

async function sims(t: { teardown(fn: () => unknown): void }, n: number) {
  const list = await Promise.all(Array.from({ length: n }, () => Simulator.start({ models: ['llama3.2:latest', 'qwen2.5:0.5b'], maxLoaded: 1, loadMs: 30, ttftMs: 0, tokenMs: 0, tokens: 2 })));
  t.teardown(() => Promise.all(list.map((s) => s.stop())));
  return list;
}

t.test('each model stays where it is loaded: two models on two one-model backends load twice, not every time', async (t) => {
  const [a, b] = await sims(t, 2);
  const { url, gateway } = await startGateway(t, [a!, b!]);
  await trace(url);
  t.equal(a!.stats.loads + b!.stats.loads, 2, 'one cold load per model');
  t.same(
    [a!.seen.map((r) => r.model), b!.seen.map((r) => r.model)].map((ms) => new Set(ms.filter(Boolean)).size),
    [1, 1],
    'each backend kept to one model',
  );
  await settled(gateway);
});

t.test('round robin (warm-first off) reloads on every switch', async (t) => {
  const [a, b] = await sims(t, 2);
  const { url } = await startGateway(t, [a!, b!], { warmFirst: 'no' });
  await trace(url);
  t.ok(a!.stats.loads + b!.stats.loads > 2, `more loads without warm-first (${a!.stats.loads + b!.stats.loads})`);
});

/**
 * One backend, held busy with llama; then an older job for qwen (cold) and a younger one for
 * llama (warm) wait. Returns the order the backend served them in.
 */
async function olderColdYoungerWarm(t: Parameters<typeof sims>[0], skewSeconds: number): Promise<(string | undefined)[]> {
  const [a] = await sims(t, 1);
  a!.hold();
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `backends: [{url: "http://127.0.0.1:1"}]\nrouting: {warm_skew_seconds: ${skewSeconds}}\n`);
  const { url, gateway } = await startGateway(t, [a!], { queueSize: '10' }, { file });
  const holder = post(url, '/api/chat', chat('holder', { model: 'llama3.2', stream: false }));
  await a!.waitFor(() => a!.waitingAtGate === 1);
  const cold = post(url, '/api/chat', chat('older, cold', { model: 'qwen2.5:0.5b', stream: false }));
  await until(() => gateway.dispatcher.queueDepth === 1, 'cold waiting');
  await new Promise((r) => setTimeout(r, 5));
  const warm = post(url, '/api/chat', chat('younger, warm', { model: 'llama3.2', stream: false }));
  await until(() => gateway.dispatcher.queueDepth === 2, 'warm waiting');
  a!.release();
  await Promise.all([holder, cold, warm]);
  return a!.seen.filter((r) => r.path === '/api/chat').map((r) => r.tag);
}

t.test('a freed slot goes to a younger waiter whose model is loaded there, within the skew', async (t) => {
  t.same(await olderColdYoungerWarm(t, 2), ['holder', 'younger, warm', 'older, cold'], 'the warm job went first');
});

t.test('beyond the skew, FIFO holds', async (t) => {
  t.same(await olderColdYoungerWarm(t, 0), ['holder', 'older, cold', 'younger, warm']);
});

t.test('a different num_ctx is another model for warmth', async (t) => {
  const [a, b] = await sims(t, 2);
  const { url } = await startGateway(t, [a!, b!]);
  await post(url, '/api/chat', chat('default ctx', { stream: false }));
  const first = a!.stats.requests === 1 ? a! : b!;
  const other = first === a ? b! : a!;
  await post(url, '/api/chat', chat('default again', { stream: false }));
  t.equal(first.stats.requests, 2, 'same options: same backend');
  await post(url, '/api/chat', chat('big ctx', { stream: false, options: { num_ctx: 32768 } }));
  t.equal(first.stats.loads + other.stats.loads, 2, 'the bigger context was a second load');
});
