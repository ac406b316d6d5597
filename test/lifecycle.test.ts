// Stop and reload as ops meet them: the real CLI in its own process, driven by signals.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import t from 'tap';
import { chat, get, post, startGateway, startSims, until, type Teardown } from './helpers.js';

const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;

interface Proc {
  child: ChildProcess;
  url: string;
  lines: Record<string, unknown>[];
  exited: Promise<number | null>;
  waitLog(pred: (l: Record<string, unknown>) => boolean, what: string): Promise<Record<string, unknown>>;
}

async function serve(t: Teardown, args: string[]): Promise<Proc> {
  const child = spawn(process.execPath, [BIN, 'serve', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: Record<string, unknown>[] = [];
  const listeners: (() => void)[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      return;
    }
    for (const l of listeners) l();
  });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const waitLog = (pred: (l: Record<string, unknown>) => boolean, what: string) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const check = () => {
        const found = lines.find(pred);
        if (found) {
          clearTimeout(timer);
          resolve(found);
          return true;
        }
        return false;
      };
      const timer = setTimeout(() => reject(new Error(`no log line: ${what}; stderr: ${stderr}`)), 10_000);
      if (!check()) listeners.push(check);
    });
  const started = await waitLog((l) => l['msg'] === 'gateway listening', 'gateway listening');
  return { child, url: `http://${String(started['listen'])}`, lines, exited, waitLog };
}

function configDir(t: Teardown): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

t.test('SIGTERM under load: queued jobs get 503, every stream in flight finishes, exit 0', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 20, tokens: 25, parallel: 3 });
  const p = await serve(t, ['--backends', sim!.url, '--listen', '127.0.0.1:0', '--drain-seconds', '20', '--slots-per-backend', '3']);
  const streaming = [0, 1, 2].map((i) => post(p.url, '/api/chat', chat(`long ${i}`)));
  await sim!.waitFor(() => sim!.stats.tokensSent >= 6);
  const queued = [0, 1, 2].map((i) => post(p.url, '/api/chat', chat(`queued ${i}`)));
  // the gateway runs in its own process: watch its queue through /healthz
  let depth = 0;
  for (let i = 0; i < 500 && depth < 3; i++) {
    depth = ((await get(p.url, '/healthz')).json() as { queue: { depth: number } }).queue.depth;
  }
  t.equal(depth, 3, 'three jobs waiting');
  p.child.kill('SIGTERM');
  for (const q of await Promise.all(queued)) {
    t.equal(q.status, 503);
    t.match(q.json(), { error: /shutting down/ });
  }
  for (const s of await Promise.all(streaming)) {
    t.equal(s.status, 200);
    t.match(s.text.trim().split('\n').pop()!, /"done":true/, 'the stream finished whole');
  }
  t.equal(await p.exited, 0, 'exit 0');
  t.equal(sim!.stats.cancelled, 0, 'nothing was cut');
  t.equal(sim!.seen.filter((r) => r.tag?.startsWith('queued')).length, 0, 'no queued job reached the backend');
});

t.test('SIGTERM: streams that outlive the drain deadline are cut, and it still exits 0', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 50, tokens: 1000 });
  const p = await serve(t, ['--backends', sim!.url, '--listen', '127.0.0.1:0', '--drain-seconds', '0.3']);
  const streaming = post(p.url, '/api/chat', chat('endless')).catch((e: Error) => e);
  await sim!.waitFor(() => sim!.stats.tokensSent >= 2);
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
  await sim!.waitFor(() => sim!.stats.cancelled === 1);
  t.pass('the backend saw the cut');
  await streaming;
});

t.test('SIGHUP: added backends join, removed ones finish their streams and leave, a bad file changes nothing', async (t) => {
  const [a, b] = await startSims(t, 2, { ttftMs: 0, tokenMs: 20, tokens: 30 });
  const dir = configDir(t);
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, `listen: 127.0.0.1:0\nbackends:\n  - url: ${a!.url}\n    name: a\n`);
  const p = await serve(t, ['--config', file]);
  const streaming = post(p.url, '/api/chat', chat('through a'));
  await a!.waitFor(() => a!.stats.tokensSent >= 2);

  writeFileSync(file, `listen: 127.0.0.1:0\nbackends:\n  - url: ${b!.url}\n    name: b\n`);
  p.child.kill('SIGHUP');
  const reloaded = await p.waitLog((l) => l['msg'] === 'config reloaded', 'config reloaded');
  t.match(reloaded, { backends_added: ['b'], backends_removed: ['a'], keys_added: [], settings_changed: [] }, 'the log line says what the reload changed');
  const fresh = await post(p.url, '/api/chat', chat('after reload', { stream: false }));
  t.equal(fresh.status, 200);
  t.equal(b!.seen.filter((r) => r.tag === 'after reload').length, 1, 'new work goes to the added backend');
  const s = await streaming;
  t.match(s.text.trim().split('\n').pop()!, /"done":true/, 'the stream on the removed backend finished whole');
  t.equal(a!.stats.cancelled, 0);
  await p.waitLog((l) => l['msg'] === 'backend removed' && l['backend'] === 'a', 'a removed once idle');

  writeFileSync(file, `listen: 127.0.0.1:0\nbackends: nope\nqueue: {size: -1}\n`);
  p.child.kill('SIGHUP');
  const rejected = await p.waitLog((l) => l['msg'] === 'config reload rejected: keeping the running config', 'reload rejected');
  t.match(rejected, { problems: [/backends/, /queue.size/] });
  t.equal((await post(p.url, '/api/chat', chat('still b', { stream: false }))).status, 200, 'the old config keeps serving');
  const health = (await get(p.url, '/healthz')).json() as { backends: { name: string }[] };
  t.same(
    health.backends.map((x) => x.name),
    ['b'],
  );
  p.child.kill('SIGTERM');
  t.equal(await p.exited, 0);
});

t.test('reload in process: slots grow and waiting jobs take them at once', async (t) => {
  const [sim] = await startSims(t, 1, { parallel: 4 });
  sim!.hold();
  const { url, gateway } = await startGateway(t, [sim!], { queueSize: '10' });
  const jobs = [0, 1, 2].map((i) => post(url, '/api/chat', chat(`j${i}`, { stream: false })));
  await until(() => gateway.dispatcher.queueDepth === 2, 'two waiting');
  const { loadConfig } = await import('../dist/src/config/load.js');
  gateway.reload(loadConfig({ env: {}, flags: { backends: `sim1=${sim!.url}`, listen: '127.0.0.1:0', slotsPerBackend: '3' } }));
  t.equal(gateway.dispatcher.queueDepth, 0, 'the waiters got the new slots at once');
  await sim!.waitFor(() => sim!.waitingAtGate === 3);
  sim!.release();
  t.same(
    (await Promise.all(jobs)).map((r) => r.status),
    [200, 200, 200],
  );
  t.equal(sim!.stats.maxActive, 3);
});
