// Lost or hung work a hostile test found (issue 10, points 7 to 15 and the weaker points):
// pipelined orphans, SSE framed with CRLF, a huge SSE event, backends that answer 500 or 503 to
// everything, a hung backend, a body over the limit sent to a client still writing, the drain
// deadline, budgets under bursts, connection and body-memory bounds, a damaged ledger. Each
// case checks what the client saw and that the gateway's accounting is back to zero; the fault
// figures (requests lost) are printed for the closing note.
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { request } from 'undici';
import { hashKey } from '../dist/src/auth/keys.js';
import { UsageChunkDrop } from '../dist/src/relay/usage-drop.js';
import { chat, configFile, get, post, rawConnect, readAll, settled, sleep, startGateway, startSims, until } from './helpers.js';

const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;
const APP = 'ogw_hostile-faults-app-0123456789';


const backendsYaml = (urls: readonly string[]) => `backends:\n${urls.map((u) => `  - {url: "${u}"}`).join('\n')}\n`;

t.test('pipelined requests of a closed connection are all cancelled, queued or running', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 20, tokens: 500, parallel: 8 });
  const { url, gateway } = await startGateway(t, [sim!], { slotsPerBackend: '4' });
  const s = await rawConnect(url);
  const body = JSON.stringify(chat('pipelined'));
  const one = `POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`;
  s.write(one.repeat(6));
  await sim!.waitFor(() => sim!.stats.active === 4 && sim!.stats.tokensSent > 4);
  await until(() => gateway.dispatcher.queueDepth === 2, 'two wait for a slot');
  s.destroy();
  await sim!.waitFor(() => sim!.stats.active === 0);
  t.equal(sim!.stats.cancelled, 4, 'the four running generations were cut at the backend');
  t.equal(sim!.stats.completed, 0, 'none ran to completion');
  await settled(gateway, 'no slot held, nobody queued');
  t.equal(gateway.dispatcher.counts.cancelled_queued, 2, 'the two queued left the queue');
  console.log('# figure: pipelined orphans left running: %d of 6', sim!.stats.completed);
});

t.test('an OpenAI stream framed with CRLF reaches the client whole, and its usage chunk is still dropped', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const file = configFile(t, `${backendsYaml([sim!.url])}keys:\n  - {name: app, sha256: "${hashKey(APP)}", tokens_per_day: 100000}\n`);
  const { url, gateway, logs } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  sim!.setFaults({ sseCrlf: true });
  const reply = await post(url, '/v1/chat/completions', chat('crlf', { stream: true }), { headers: { authorization: `Bearer ${APP}`, 'x-request-id': 'crlf' } });
  t.equal(reply.status, 200);
  t.equal(reply.text.match(/^data: \{/gm)?.length, 6, 'five tokens and the finish chunk');
  t.match(reply.text, /data: \[DONE\]\r\n\r\n$/);
  t.notMatch(reply.text, /"usage"/, 'the usage chunk the client did not ask for is gone');
  t.match(await logs.requestLine('crlf'), { status: 200, completion_tokens: 5 });
  await settled(gateway);
});

t.test('SSE event boundaries by the spec, at every split, and never more held than the bound', async (t) => {
  const usage = 'data: {"id":"x","choices":[],"usage":{"prompt_tokens":1}}';
  for (const eol of ['\n', '\r\n', '\r']) {
    const stream = `data: {"choices":[{"delta":{"content":"a"}}]}${eol}${eol}${usage}${eol}${eol}data: [DONE]${eol}${eol}`;
    const want = stream.replace(`${usage}${eol}${eol}`, '');
    for (let cut = 0; cut <= stream.length; cut++) {
      const d = new UsageChunkDrop();
      const out = [d.push(Buffer.from(stream.slice(0, cut))), d.push(Buffer.from(stream.slice(cut))), d.flush() ?? Buffer.alloc(0)];
      const got = Buffer.concat(out).toString();
      if (got !== want) {
        t.fail(`eol ${JSON.stringify(eol)} split at ${cut}: ${JSON.stringify(got)}`);
        return;
      }
    }
  }
  t.pass('every split point, every line end');
  // a 50 MB event in 64 KiB pieces: passed through as it comes, never held past the bound
  const d = new UsageChunkDrop(1024 * 1024);
  const piece = Buffer.alloc(65536, 0x78);
  let passed = d.push(Buffer.from('data: {"pad":"')).length;
  let heldBack = 0;
  for (let i = 0; i < 800; i++) {
    const out = d.push(piece).length;
    if (out === 0) heldBack++;
    passed += out;
  }
  t.ok(heldBack <= 16, `held while under the 1 MiB bound, then passed as it came (${heldBack} pieces held back)`);
  passed += d.push(Buffer.from('"}\n\n')).length;
  t.equal(passed, 14 + 800 * 65536 + 4, 'all of it passed, none dropped');
  t.equal(d.flush(), undefined, 'nothing held at the end');
});

t.test('a huge SSE event passes through whole on a stream that asks for usage (the bound on what is held is the unit test above)', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const file = configFile(t, `${backendsYaml([sim!.url])}keys:\n  - {name: app, sha256: "${hashKey(APP)}", tokens_per_day: 100000}\n`);
  const { url, gateway } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  sim!.setFaults({ bigEventBytes: 8 * 1024 * 1024 });
  const reply = await post(url, '/v1/chat/completions', chat('big', { stream: true }), { headers: { authorization: `Bearer ${APP}` } });
  t.equal(reply.status, 200);
  t.ok(reply.text.length > 8 * 1024 * 1024, 'the big event arrived');
  t.match(reply.text, /data: \[DONE\]\n\n$/);
  t.equal((await get(url, '/healthz')).status, 200);
  await settled(gateway);
});

t.test('a backend that answers 500 to every generation: retried elsewhere, taken out, no request lost', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const { url, gateway } = await startGateway(t, sims);
  sims[0]!.setFaults({ status500: true });
  const replies = [];
  for (let i = 0; i < 20; i++) replies.push(await post(url, '/api/chat', chat(`r${i}`, { stream: i % 2 === 0 })));
  const lost = replies.filter((r) => r.status !== 200).length;
  t.equal(lost, 0, 'every request answered 200');
  t.equal(gateway.registry.byName('sim1')!.healthy, false, 'the 500-ing backend left rotation');
  t.ok((sims[0]!.stats.byPath['/api/chat'] ?? 0) <= 3, `it got at most unhealthy_after (3) jobs (${sims[0]!.stats.byPath['/api/chat']})`);
  console.log('# figure: requests lost to a backend answering 500: %d of 20', lost);
  await settled(gateway);
});

t.test('a backend that answers 503 busy at once: retried elsewhere and backed off, no request lost', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const { url, gateway } = await startGateway(t, sims, { slotsPerBackend: '2' });
  sims[0]!.setFaults({ status503: true });
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => post(url, '/api/chat', chat(`b${i}`, { stream: false }))));
  const lost = replies.filter((r) => r.status !== 200).length;
  t.equal(lost, 0, 'every request answered 200');
  t.ok((sims[0]!.stats.byPath['/api/chat'] ?? 0) < 10, `the busy backend drew few jobs (${sims[0]!.stats.byPath['/api/chat']})`);
  t.equal(gateway.registry.byName('sim1')!.healthy, true, 'busy is not sick: it stays in rotation');
  console.log('# figure: requests lost to a backend answering 503 busy: %d of 40', lost);
  await settled(gateway);
});

t.test('a hung backend (accepts, never answers, probes included): out within a couple of probe intervals, no request lost', async (t) => {
  const sims = await startSims(t, 4, { ttftMs: 0, tokenMs: 2, tokens: 5 });
  // probes every 0.5 s with a 1 s timeout: three timeouts in a row (the threshold) take 4.5 s,
  // longer than these clients wait (4 s); the hang must be seen from the first timeout
  const file = configFile(t, `${backendsYaml(sims.map((s) => s.url))}health: {interval_seconds: 0.5, timeout_seconds: 1}\nqueue: {size: 1000}\n`);
  const { url, gateway } = await startGateway(t, sims, { healthIntervalSeconds: '0.5' }, { file, backendsFromFile: true });
  // a few rounds of fast probes, so the gateway knows how quickly this box usually answers
  await until(() => sims[0]!.seen.filter((r) => r.path === '/').length >= 3, 'probes answered');
  sims[0]!.setFaults({ hangAll: true });
  const hungAt = performance.now();
  const replies = await Promise.all(
    Array.from({ length: 60 }, async (_, i) => {
      await sleep(i * 25);
      return post(url, '/api/chat', chat(`h${i}`, { stream: i % 2 === 0 }), { signal: AbortSignal.timeout(4_000) }).catch((err: Error) => ({ status: 0, text: err.message }));
    }),
  );
  const lost = replies.filter((r) => r.status !== 200 || !/"done":true/.test(r.text)).length;
  t.equal(lost, 0, 'every request answered whole');
  const hung = gateway.registry.all.find((b) => b.url === sims[0]!.url)!;
  t.equal(hung.healthy, false, 'the hung backend is out');
  // on a quiet machine the first timed-out probe says "hung"; on a loaded one probes are slow
  // anyway and the thresholds decide (the unit test below holds the rule itself)
  t.match(hung.health.lastError, /hung|timeout/, String(hung.health.lastError));
  console.log('# figure: requests lost while one of four backends hangs: %d of 60 (all answered %d ms after the hang began)', lost, Math.round(performance.now() - hungAt));
  sims[0]!.resetFaults();
  await settled(gateway);
});

t.test("a stall of the gateway's own event loop past the probe timeout does not call a healthy backend hung", async (t) => {
  // the backend in a process of its own, so that it answers while the gateway is stalled (as a
  // real box does), and the answer waits in the gateway's socket
  const sim = spawn(process.execPath, [BIN, 'simulate', '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => sim.kill());
  const simUrl = await new Promise<string>((resolve) => {
    let out = '';
    sim.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
  });
  const file = configFile(t, `${backendsYaml([simUrl])}health: {interval_seconds: 60, timeout_seconds: 0.3}\n`);
  const { gateway } = await startGateway(t, [], {}, { file, backendsFromFile: true });
  const b = gateway.registry.all[0]!;
  // a few quick probes: the gateway learns that this box answers in a millisecond or two
  for (let i = 0; i < 3; i++) t.equal(await gateway.health.probeOnce(b), true, `probe ${i + 1} answered`);
  const probe = gateway.health.probeOnce(b);
  // the gateway's loop busy for 1 s (16,000 requests at once kept it so for seconds)
  const until = performance.now() + 1_000;
  while (performance.now() < until);
  t.equal(await probe, true, 'the probe the stall spanned is heard');
  t.equal(b.healthy, true, 'the backend stays in rotation');
  t.equal(b.health.lastError, undefined, String(b.health.lastError));
  // and a backend that truly says nothing is still found out, within its timeout of attention
  sim.kill('SIGSTOP');
  t.teardown(() => sim.kill('SIGCONT'));
  const t0 = performance.now();
  t.equal(await gateway.health.probeOnce(b), false, 'a silent backend fails its probe');
  const waited = performance.now() - t0;
  t.ok(waited >= 300, `after its timeout (${Math.round(waited)} ms)`);
  t.equal(b.healthy, false, 'and, hung, is out at once');
  t.match(b.health.lastError, /hung: its health probe got no answer in 300 ms/);
});

t.test('a flapping backend (down and up every 150 ms): every request answered, none hangs', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 0, tokens: 3 });
  const { url, gateway } = await startGateway(t, sims, { healthIntervalSeconds: '0.1' });
  let flapping = true;
  let flaps = 0;
  const flapper = (async () => {
    while (flapping) {
      await sleep(150);
      await sims[0]!.down();
      flaps++;
      await sleep(150);
      await sims[0]!.up();
    }
  })();
  const replies = [];
  for (let i = 0; i < 150; i++) {
    replies.push(await post(url, '/api/chat', chat(`f${i}`, { stream: false }), { signal: AbortSignal.timeout(10_000) }).catch((err: Error) => ({ status: 0, text: err.message })));
    await sleep(5);
  }
  flapping = false;
  await flapper;
  const lost = replies.filter((r) => r.status !== 200).length;
  // a kill can cut only the one job in flight on the flapping backend's one slot
  t.ok(lost <= flaps, `${lost} of 150 lost over ${flaps} flaps`);
  t.ok(replies.every((r) => r.status !== 0), 'none hung');
  console.log('# figure: requests lost to a backend flapping down and up: %d of 150 (%d flaps)', lost, flaps);
  await settled(gateway);
});

t.test('a flood of large bodies at once: the gateway process\'s memory stays bounded, the excess is answered 503 body_memory_full', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const file = configFile(t, `${backendsYaml([sim!.url])}limits: {max_body_bytes: 33554432, max_buffered_body_bytes: 67108864}\n`);
  // the gateway in a process of its own, so its peak RSS (VmHWM) is its own
  const child = spawn(process.execPath, [BIN, 'serve', '-c', file, '--listen', '127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => child.kill('SIGKILL'));
  const url = await new Promise<string>((resolve, reject) => {
    let seen = '';
    child.stdout!.on('data', (d: Buffer) => {
      seen += d.toString();
      const m = /"listen":"([\d.]+:\d+)"/.exec(seen);
      if (m) resolve(`http://${m[1]}`);
    });
    child.once('exit', () => reject(new Error(`the gateway exited: ${seen}`)));
  });
  const vm = (field: string) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024;
  const idle = vm('VmRSS');
  // one 30 MB body, written to 24 connections at once, each held open before its last byte
  const body = Buffer.alloc(30 * 1024 * 1024, 0x61);
  const answers = await Promise.all(
    Array.from({ length: 24 }, async () => {
      const s = await rawConnect(url);
      const out = readAll(s);
      s.write(`POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      s.write(body.subarray(0, body.length - 1));
      const text = await Promise.race([out, sleep(6000).then(() => '')]);
      s.destroy();
      return text;
    }),
  );
  const peak = vm('VmHWM');
  const refused = answers.filter((a) => /^HTTP\/1\.1 503 /.test(a) && /bodies being read/.test(a)).length;
  t.ok(refused >= 18, `${refused} of 24 refused with 503 body_memory_full`);
  t.ok(answers.every((a) => a === '' || /^HTTP\/1\.1 503 /.test(a)), 'the rest are still being read (their last byte never came)');
  // without the bound the gateway held all 24 x 30 MB (and joined each: about 1.4 GB)
  t.ok(peak - idle < 300, `peak RSS ${Math.round(peak)} MB, ${Math.round(peak - idle)} MB over idle, with a 64 MB bound on bodies`);
  console.log('# figure: gateway peak RSS under 24 x 30 MB bodies at once: %d MB (idle %d MB, bound 64 MB; %d refused)', Math.round(peak), Math.round(idle), refused);
});

t.test('health: a strong failure (a probe timed out where it usually answers at once) takes a backend out at once', async (t) => {
  const { HealthState } = await import('../dist/src/backends/health-state.js');
  const h = new HealthState(3, 2);
  t.equal(h.success('probe'), undefined);
  for (const ms of [1, 2, 80, 1, 1]) h.noteProbe(ms);
  t.equal(h.usualProbeMs, 1, 'the median: one slow probe does not move it');
  t.equal(h.failure('probe', 'timeout'), undefined, 'an ordinary failure waits for the threshold');
  t.match(h.failure('probe', 'hung', true), { healthy: false, reason: 'hung' }, 'a strong one does not');
  t.equal(h.lastError, 'hung');
  t.equal(h.failure('traffic', 'backend went down'), undefined);
  t.equal(h.lastError, 'hung', 'a job cut by the down does not overwrite why');
});

t.test('a body over the limit: a client still writing reads the 413 (lingering close)', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const { url, gateway } = await startGateway(t, [sim!], { maxBodyBytes: '65536' });
  const big = JSON.stringify(chat('x'.repeat(4 * 1024 * 1024)));
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`${url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
    t.equal(res.status, 413, `fetch with a declared length reads the 413 (${i + 1})`);
    t.match(await res.json(), { error: /larger than the limit/ });
  }
  // a client that writes its whole body before it reads (as Python's requests does)
  for (let i = 0; i < 3; i++) {
    const s = await rawConnect(url);
    s.pause();
    const body = Buffer.alloc(16 * 1024 * 1024, 0x61);
    const written = new Promise<void>((resolve) => s.write(`POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`, () => s.write(body, () => resolve())));
    const answer = readAll(s);
    await Promise.race([written, sleep(3000)]);
    s.resume();
    t.match(await answer, /^HTTP\/1\.1 413 /, `a client that reads only after writing sees the 413 (${i + 1})`);
  }
  // chunked: refused once it crosses the limit, still read by the client
  const stream = new ReadableStream({
    start(c) {
      for (let i = 0; i < 64; i++) c.enqueue(new TextEncoder().encode('y'.repeat(65536)));
      c.close();
    },
  });
  const chunked = await fetch(`${url}/api/chat`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
  t.equal(chunked.status, 413, 'a chunked body too');
  await chunked.body?.cancel();
  await settled(gateway);
});

t.test('drain deadline: streams still running end with a final error line, not a reset', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 20, tokens: 500 });
  const { url, gateway } = await startGateway(t, [sim!]);
  const res = await request(`${url}/api/chat`, { method: 'POST', body: JSON.stringify(chat('long')) });
  const text = (async () => {
    let s = '';
    for await (const c of res.body) s += String(c);
    return s;
  })();
  await sim!.waitFor(() => sim!.stats.tokensSent > 3);
  await gateway.stop(100);
  const body = await text;
  const last = JSON.parse(body.trim().split('\n').pop()!) as { error?: string };
  t.match(last, { error: /drain deadline/ }, 'the stream\'s last line says why it ended');
  await sim!.waitFor(() => sim!.stats.cancelled === 1);
});

t.test('budgets: a burst of non-streamed jobs without num_predict stays within the budget; streams are not cut by others\' reservations', async (t) => {
  const sims = await startSims(t, 2, { ttftMs: 0, tokenMs: 1, tokens: 60 });
  const file = configFile(t, `${backendsYaml(sims.map((s) => s.url))}slots_per_backend: 4\nbudgets: {output_estimate_tokens: 40}\nkeys:\n  - {name: app, sha256: "${hashKey(APP)}", tokens_per_day: 300}\n`);
  const { url, gateway } = await startGateway(t, sims, {}, { file, backendsFromFile: true });
  const headers = { authorization: `Bearer ${APP}` };
  const burst = await Promise.all(Array.from({ length: 12 }, (_, i) => post(url, '/api/chat', chat(`n${i}`, { stream: false }), { headers })));
  const served = burst.filter((r) => r.status === 200);
  t.ok(served.length > 0 && burst.every((r) => r.status === 200 || r.status === 429), `${served.length} served, the rest 429`);
  for (const r of served) t.ok(r.json<{ eval_count: number }>().eval_count <= 40, 'each generated at most what it reserved');
  const used = gateway.budgets.usage('app').day;
  t.ok(used <= 300 * 1.1, `used ${used} of a budget of 300 (within 10%)`);
  console.log('# figure: non-streamed burst used %d of a 300-token budget (%d of 12 served)', used, served.length);

  // a stream beside a held job that reserved most of what is left: the stream is not cut
  const big = 'ogw_hostile-faults-big-0123456789';
  const file2 = configFile(t, `${backendsYaml(sims.map((s) => s.url))}keys:\n  - {name: big, sha256: "${hashKey(big)}", tokens_per_day: 1000}\n`);
  const g2 = await startGateway(t, sims, {}, { file: file2, backendsFromFile: true });
  sims[0]!.hold();
  const held = post(g2.url, '/api/chat', chat('held', { stream: false, options: { num_predict: 900 } }), { headers: { authorization: `Bearer ${big}` } });
  await sims[0]!.waitFor(() => sims[0]!.waitingAtGate === 1);
  const stream = await post(g2.url, '/api/chat', chat('streams'), { headers: { authorization: `Bearer ${big}` } });
  t.match(stream.text.trim().split('\n').pop()!, /"done":true/, 'the stream ran to its end');
  t.equal(stream.text.trim().split('\n').length, 61, 'all 60 tokens and the final chunk');
  sims[0]!.release();
  t.equal((await held).status, 200);
  await settled(g2.gateway);
  await settled(gateway);
});

t.test('bounds: limits.max_connections, and a bound on the bodies held in memory (503, never out of memory)', async (t) => {
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 3 });
  const file = configFile(t, `${backendsYaml([sim!.url])}limits: {max_connections: 4, max_buffered_body_bytes: 100000, max_body_bytes: 1000000}\n`);
  const { url, gateway } = await startGateway(t, [sim!], {}, { file, backendsFromFile: true });
  const open = await Promise.all(Array.from({ length: 3 }, () => rawConnect(url)));
  // slow uploads: headers and 60 KB of a chunked body each, never finished
  const upload = (s: (typeof open)[number]) => s.write(`POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nea60\r\n${'z'.repeat(60000)}\r\n`);
  const first = readAll(open[0]!);
  upload(open[0]!);
  await sleep(100);
  const second = readAll(open[1]!);
  upload(open[1]!);
  t.match(await second, /^HTTP\/1\.1 503 [\s\S]*body_memory_full|^HTTP\/1\.1 503 [\s\S]*bodies being read/, 'the upload past the bound gets 503');
  // open now: open[0], open[2] and these; the last is one past the bound of 4
  const fifth = await Promise.all([rawConnect(url), rawConnect(url), rawConnect(url)]);
  const extra = readAll(fifth[2]!);
  fifth[2]!.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
  t.equal(await extra, '', 'a connection past max_connections is closed without an answer');
  for (const s of [...open, ...fifth]) s.destroy();
  await first;
  // the gateway hears the closes a moment later
  let after = 0;
  for (let i = 0; i < 100 && after !== 200; i++) {
    after = await post(url, '/api/chat', chat('after', { stream: false })).then((r) => r.status, () => 0);
    if (after !== 200) await sleep(20);
  }
  t.equal(after, 200, 'and it serves after');
  await settled(gateway);
});

t.test('a damaged ledger file: one clear line at start-up and from the usage command', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'gw-ledger-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'usage.db');
  writeFileSync(db, Buffer.alloc(8192, 0x41));
  const run = (args: string[]) =>
    promisify(execFile)(process.execPath, [BIN, ...args], { timeout: 20_000 }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number; stderr: string }) => e,
    );
  const usage = await run(['usage', '--db', db]);
  t.equal(usage.code, 1);
  t.match(usage.stderr, /^error: cannot read the usage ledger .*usage\.db: .*not a database/);
  t.equal(usage.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
  const serve = await run(['serve', '--backends', 'http://127.0.0.1:1', '--listen', '127.0.0.1:0', '--usage-path', db]);
  t.equal(serve.code, 1);
  t.match(serve.stderr, /^error: usage\.path: cannot (open|read) the usage ledger .*usage\.db: .*not a database/);
  t.equal(serve.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
});
