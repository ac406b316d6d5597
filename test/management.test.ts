// Model management through the gateway: off by default, aimed at one named backend, and the
// catalog follows what it changed.
import { Ollama } from 'ollama';
import t from 'tap';
import { request } from 'undici';
import { get, post, startGateway, startSims } from './helpers.js';

t.test('off by default: 403 in Ollama\'s shape, nothing reaches a backend', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url } = await startGateway(t, [sim!]);
  const r = await post(url, '/api/pull', { model: 'phi4' });
  t.equal(r.status, 403);
  t.match(r.json(), { error: /management .* is disabled/ });
  t.equal(sim!.stats.byPath['/api/pull'], undefined);
});

t.test('on: a named backend gets it (others need a name); the catalog follows', async (t) => {
  const sims = await startSims(t, 2);
  const { url, gateway } = await startGateway(t, sims, { management: 'yes' });
  // unnamed: the first healthy backend in config order, every time (blob + create stay together)
  for (let i = 0; i < 2; i++) await request(`${url}/api/blobs/sha256:${'0'.repeat(64)}`, { method: 'HEAD' }).then((r) => r.body.dump());
  t.equal(sims[0]!.stats.byPath[`/api/blobs/sha256:${'0'.repeat(64)}`], 2);
  t.equal(sims[1]!.stats.byPath[`/api/blobs/sha256:${'0'.repeat(64)}`], undefined);
  const unknown = await post(url, '/api/pull', { model: 'phi4' }, { headers: { 'x-gateway-backend': 'nope' } });
  t.equal(unknown.status, 404);
  const pulled = await post(url, '/api/pull', { model: 'phi4' }, { headers: { 'x-gateway-backend': 'sim2' } });
  t.equal(pulled.status, 200);
  t.match(pulled.text.trim().split('\n').pop()!, /"status":"success"/);
  t.equal(sims[1]!.stats.byPath['/api/pull'], 1);
  t.equal(sims[0]!.stats.byPath['/api/pull'], undefined);
  t.notOk('x-gateway-backend' in sims[1]!.seen.find((r) => r.path === '/api/pull')!.headers, 'the routing header stays at the gateway');
  await gateway.catalogs.refresh(gateway.registry.byName('sim2')!);
  t.ok((await get(url, '/api/tags')).json<{ models: { name: string }[] }>().models.some((m) => m.name === 'phi4:latest'), 'the pulled model joins the catalog');
  const del = await request(`${url}/api/delete`, { method: 'DELETE', body: JSON.stringify({ model: 'phi4' }), headers: { 'x-gateway-backend': 'sim2' } });
  t.equal(del.statusCode, 200);
  await del.body.dump();
  await gateway.catalogs.refresh(gateway.registry.byName('sim2')!);
  t.notOk((await get(url, '/api/tags')).json<{ models: { name: string }[] }>().models.some((m) => m.name === 'phi4:latest'), 'and leaves it when deleted');
});

t.test('on, one backend: the ollama client pulls and deletes as against Ollama', async (t) => {
  const [sim] = await startSims(t, 1);
  const { url } = await startGateway(t, [sim!], { management: 'yes' });
  const ollama = new Ollama({ host: url });
  const statuses: string[] = [];
  for await (const p of await ollama.pull({ model: 'gemma3:1b', stream: true })) statuses.push(p.status);
  t.equal(statuses[statuses.length - 1], 'success');
  t.ok(sim!.models.has('gemma3:1b'));
  await ollama.delete({ model: 'gemma3:1b' });
  t.notOk(sim!.models.has('gemma3:1b'));
});

t.test('pull and delete without a name go to the whole fleet', async (t) => {
  const sims = await startSims(t, 3);
  const { url, gateway } = await startGateway(t, sims, { management: 'yes' });
  const ollama = new Ollama({ host: url });
  const seen: { status: string; backend?: string }[] = [];
  for await (const p of await ollama.pull({ model: 'gemma3:1b', stream: true })) seen.push(p as { status: string; backend?: string });
  t.equal(seen.filter((p) => p.status === 'success').length, 1, 'one success, at the end');
  t.equal(seen[seen.length - 1]!.status, 'success');
  t.same(new Set(seen.filter((p) => p.backend).map((p) => p.backend)), new Set(['sim1', 'sim2', 'sim3']), 'progress from every backend');
  t.ok(sims.every((s) => s.models.has('gemma3:1b')), 'every backend has it');
  await Promise.all(gateway.registry.all.map((b) => gateway.catalogs.refresh(b)));
  sims[2]!.models.delete('gemma3:1b');
  await ollama.delete({ model: 'gemma3:1b' });
  t.ok(sims.every((s) => !s.models.has('gemma3:1b')), 'deleted wherever it was');
  const again = await request(`${url}/api/delete`, { method: 'DELETE', body: JSON.stringify({ model: 'gemma3:1b' }) });
  t.equal(again.statusCode, 404, 'nowhere to delete it from');
  t.match(await again.body.json(), { error: "model 'gemma3:1b' not found" });
  const whole = await post(url, '/api/pull', { model: 'qwen3', stream: false });
  t.same([whole.status, whole.json()], [200, { status: 'success' }]);
  // a box out of rotation does not get it, and the answer says so (issue 12.8)
  gateway.registry.setDrained('sim3', true);
  const partial: { status: string; backend?: string; skipped?: string[] }[] = [];
  for await (const p of await ollama.pull({ model: 'phi4', stream: true })) partial.push(p as (typeof partial)[number]);
  t.match(partial.at(-1), { status: 'success', skipped: ['sim3'] }, 'the final line names the backend it skipped');
  t.ok(partial.some((p) => p.backend === 'sim3' && /^skipped sim3 \(drained\): pull there when it is back$/.test(p.status)), 'and a line says why');
  t.notOk(sims[2]!.models.has('phi4'), 'sim3 was not asked');
  t.same((await post(url, '/api/pull', { model: 'phi4', stream: false })).json(), { status: 'success', skipped: ['sim3'] });
});

t.test("signing a backend out of ollama.com is management: off unless enabled, never for a key that is not an admin's (Ollama's routes.go)", async (t) => {
  const [sim] = await startSims(t, 1);
  const off = await startGateway(t, [sim!]);
  const signout = await post(off.url, '/api/signout', {});
  t.equal(signout.status, 403, 'off by default');
  t.match(signout.json(), { error: /management/ });
  const old = await request(`${off.url}/api/user/keys/abc`, { method: 'DELETE' });
  t.equal(old.statusCode, 403, 'the older sign-out route too');
  await old.body.dump();
  t.equal(sim!.stats.byPath['/api/signout'], undefined, 'the backend never heard of it');
  // reading who a backend is stays a plain pass-through
  await post(off.url, '/api/me', {});
  t.equal(sim!.stats.byPath['/api/me'], 1, '/api/me passes through');
});
