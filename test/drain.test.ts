// Day two from the terminal (issue 12.8): `ollama-gateway backends drain NAME` takes a box out
// for maintenance (it finishes what it holds, takes nothing new) and `undrain` puts it back, both
// through the admin route with an admin key; `ollama-gateway status` reads the fleet for a person
// or, with --json, for a script.
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import t from 'tap';
import { hashKey } from '../dist/src/auth/keys.js';
import { chat, configFile, get, post, settled, startGateway, startSims, until } from './helpers.js';

const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;
const ADMIN = 'ogw_drain-admin-0123456789abcdef0123';
const APP = 'ogw_drain-app-0123456789abcdef012345';

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; out: string; err: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
    return { code: 0, out: stdout, err: stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, out: x.stdout, err: x.stderr };
  }
}

t.test('drain a backend: what it holds finishes, nothing new reaches it; undrain: it takes jobs again', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 2, tokens: 30 });
  const file = configFile(t, `backends: [{name: gpu1, url: "${sims[0]!.url}"}, {name: gpu2, url: "${sims[1]!.url}"}]\nslots_per_backend: 2\nkeys:\n  - {name: ops, sha256: "${hashKey(ADMIN)}", admin: true}\n  - {name: app, sha256: "${hashKey(APP)}"}\n`);
  const { url, gateway } = await startGateway(t, sims, {}, { file, backendsFromFile: true });
  const app = { authorization: `Bearer ${APP}` };
  // a job in flight on one backend when it is drained: held there (not timed) until the end
  for (const s of sims) s.hold();
  const long = post(url, '/api/chat', chat('long one'), { headers: app });
  await until(() => gateway.registry.all.some((b) => b.inFlight === 1), 'the long job on a backend');
  const holder = gateway.registry.all.find((b) => b.inFlight === 1)!.name;
  const other = holder === 'gpu1' ? 'gpu2' : 'gpu1';
  const hi = holder === 'gpu1' ? 0 : 1;
  sims[1 - hi]!.release();

  const refused = await cli(['backends', 'drain', holder, '--url', url], { GATEWAY_KEY: APP });
  t.equal(refused.code, 1, 'a key that is not an admin key may not drain');
  t.match(refused.err, /403: key 'app' is not an admin key/);
  const drained = await cli(['backends', 'drain', holder, '--url', url], { GATEWAY_KEY: ADMIN });
  t.equal(drained.code, 0, drained.err);
  t.match(drained.out, new RegExp(`${holder}: drained; it finishes the 1 job\\(s\\) it holds`));
  const started = (i: number) => sims[i]!.stats.byPath['/api/chat'] ?? 0;
  const counts = [started(0), started(1)];
  for (let i = 0; i < 4; i++) t.equal((await post(url, '/api/chat', chat(`after ${i}`, { stream: false, options: { num_predict: 2 } }), { headers: app })).status, 200);
  t.equal(started(hi), counts[hi], `nothing new reached ${holder}`);
  t.equal(started(1 - hi), counts[1 - hi]! + 4, `all four went to ${other}`);
  sims[hi]!.release();
  const whole = await long;
  t.equal(whole.status, 200);
  t.match(whole.text.trim().split('\n').pop(), /"done":true/, 'the stream it held finished whole');

  const health = (await get(url, '/healthz')).json<{ status: string; backends: { total: number; up: number } }>();
  t.match(health, { status: 'ok', backends: { total: 2, up: 1 } }, '/healthz counts it out');
  const text = await cli(['status', '--url', url], { GATEWAY_KEY: ADMIN });
  t.equal(text.code, 0, text.err);
  t.match(text.out, /^ollama-gateway v\d+\.\d+\.\d+ \(Node v\d+/);
  t.match(text.out, /backends: 1 of 2 up/);
  t.match(text.out, new RegExp(`\\n  ${holder}\\s+0/2  drained`));
  const json = JSON.parse((await cli(['status', '--url', url, '--json'], { GATEWAY_KEY: ADMIN })).out) as { backends: { name: string; drained: boolean }[] };
  t.same(json.backends.map((b) => [b.name, b.drained]).sort(), [['gpu1', holder === 'gpu1'], ['gpu2', holder === 'gpu2']], '--json: the report for a script');

  const back = await cli(['backends', 'undrain', holder, '--url', url], { GATEWAY_KEY: ADMIN });
  t.match(back.out, `${holder}: back in rotation`);
  for (let i = 0; i < 4; i++) await post(url, '/api/chat', chat(`again ${i}`, { stream: false, options: { num_predict: 2 } }), { headers: app });
  t.ok(started(hi) > counts[hi]!, `${holder} takes jobs again`);
  t.equal((await cli(['backends', 'drain', 'nope', '--url', url], { GATEWAY_KEY: ADMIN })).err, "error: 404: no backend named 'nope'\n");
  await settled(gateway);
});

t.test('draining the only backend: waiting jobs are answered at once, not at their max wait; the key view of status', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 2, tokens: 30 });
  const file = configFile(t, `backends: [{name: gpu1, url: "${sim!.url}"}]\nkeys:\n  - {name: ops, sha256: "${hashKey(ADMIN)}", admin: true}\n  - {name: app, sha256: "${hashKey(APP)}", tokens_per_day: 5000}\n`);
  const { url, gateway } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const app = { authorization: `Bearer ${APP}` };
  sim!.hold();
  const running = post(url, '/api/chat', chat('running'), { headers: app });
  await until(() => gateway.registry.all[0]!.inFlight === 1, 'the first job on the backend');
  const waiting = post(url, '/api/chat', chat('waiting', { stream: false }), { headers: app });
  await until(() => gateway.dispatcher.queueDepth === 1, 'the second job waiting');
  t.equal((await cli(['backends', 'drain', 'gpu1', '--url', url], { GATEWAY_KEY: ADMIN })).code, 0);
  const w = await waiting;
  t.equal(w.status, 503, 'the waiting job: no backend left to take it');
  sim!.release();
  t.equal((await running).status, 200, 'the running one finished');
  const mine = await cli(['status', '--url', url], { GATEWAY_KEY: APP });
  t.match(mine.out, /the fleet: 0 of 1 backends up/);
  t.match(mine.out, /key app: 2 requests today/);
  t.match(mine.out, /limits: .*tokens_per_day 5000/);
  t.notMatch(mine.out, sim!.url, 'no backend URL for a key that is not an admin key');
  const unreachable = await cli(['status', '--url', 'http://127.0.0.1:1']);
  t.equal(unreachable.code, 1);
  t.match(unreachable.err, /^error: cannot reach the gateway at http:\/\/127\.0\.0\.1:1/);
  await settled(gateway);
});

t.test('ollama-gateway top: a live view redrawn in place, until Ctrl-C leaves the terminal as it was', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 0, tokens: 3 });
  const file = configFile(t, `backends: [{name: gpu1, url: "${sims[0]!.url}"}, {name: gpu2, url: "${sims[1]!.url}"}]\nkeys:\n  - {name: ops, sha256: "${hashKey(ADMIN)}", admin: true}\n`);
  const { url, gateway } = await startGateway(t, sims, {}, { file, backendsFromFile: true });
  await post(url, '/api/chat', chat('one', { stream: false }), { headers: { authorization: `Bearer ${ADMIN}` } });
  gateway.registry.setDrained('gpu2', true);
  const child = spawn(process.execPath, [BIN, 'top', '--url', url, '--interval', '0.2'], { env: { ...process.env, GATEWAY_KEY: ADMIN }, stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  await until(() => out.split('\x1b[H').length > 3, 'three frames drawn', 10_000);
  const frame = out.split('\x1b[H').at(-2)!.replace(/\x1b\[[KJ]/g, '');
  t.match(frame, /^ollama-gateway v\d+\.\d+\.\d+ at http/);
  t.match(frame, /backends 1\/2 up/);
  t.match(frame, /\ngpu1\s+\[\.+\] 0\/1\s+[\d.]+\s+up {2}llama3\.2:latest/, 'gpu1 up, with what it has loaded');
  t.match(frame, /\ngpu2\s+\[\.+\] 0\/1\s+[\d.]+\s+drained/, 'gpu2 drained');
  t.match(frame, /\nops\s+1\s+\d+\s+3\s+0/, "the key's requests and tokens today");
  t.ok(out.startsWith('\x1b[?1049h'), 'drawn on the alternate screen');
  child.kill('SIGINT');
  const code = await new Promise((r) => child.once('exit', r));
  t.equal(code, 0);
  t.ok(out.endsWith('\x1b[?25h\x1b[?1049l'), 'and the terminal given back as it was');
});
