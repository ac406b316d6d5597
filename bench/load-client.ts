// The load generator, in a process of its own (forked by bench/run.ts): opens streams and
// measures time to first token and the gaps between tokens as the client sees them, or drives a
// closed loop of non-streamed requests, or sends large bodies. Answers over IPC.
import { connect, type Socket } from 'node:net';
import { Agent, request } from 'undici';

export type Task =
  | {
      readonly kind: 'streams';
      readonly url: string;
      readonly path: string;
      readonly body: string;
      readonly concurrency: number;
      /** keep `concurrency` streams open for this long, each starting a new one when it ends */
      readonly durationMs: number;
      /** spread the first starts over this many ms, so arrivals are steady, not one burst */
      readonly staggerMs: number;
    }
  | { readonly kind: 'closed-loop'; readonly targets: readonly string[]; readonly perTarget: number; readonly path: string; readonly body: string; readonly durationMs: number }
  | { readonly kind: 'cancel'; readonly url: string; readonly phase: 'queued' | 'before_first_byte' | 'streaming'; readonly n: number; readonly fill: number; readonly prefix: string }
  | {
      readonly kind: 'fairness';
      readonly url: string;
      readonly heavyKey: string;
      readonly lightKey: string;
      readonly heavyJobs: number;
      readonly lightEveryMs: number;
    }
  | { readonly kind: 'trace'; readonly url: string; readonly models: readonly string[]; readonly concurrency: number }
  | { readonly kind: 'bodies'; readonly url: string; readonly path: string; readonly bytes: number; readonly concurrency: number; readonly durationMs: number }
  /** `n` jobs at once: a connection each, all opened first, then every request written in one go */
  | { readonly kind: 'burst'; readonly url: string; readonly path: string; readonly body: string; readonly n: number };

export interface BurstResult {
  readonly completed: number;
  readonly failed: number;
  /** from the first request written to the last answer read */
  readonly elapsedMs: number;
}

/**
 * A burst of jobs over raw sockets (the cheapest client there is, so the proxy is what is
 * measured): connections opened in batches (a SYN flood would only measure the kernel's
 * backlog), then every request written at once; an answer is whole when its Content-Length has
 * arrived.
 */
async function burst(t: Extract<Task, { kind: 'burst' }>): Promise<BurstResult> {
  const u = new URL(t.url);
  const req = Buffer.from(`POST ${t.path} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(t.body)}\r\n\r\n${t.body}`);
  const sockets: Socket[] = [];
  for (let i = 0; i < t.n; i += 500) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(500, t.n - i) }, () => new Promise<Socket>((resolve, reject) => {
        const s = connect(Number(u.port), u.hostname, () => resolve(s));
        s.once('error', reject);
      })),
    );
    sockets.push(...batch);
  }
  let completed = 0;
  let failed = 0;
  const start = performance.now();
  await Promise.all(
    sockets.map(
      (s) =>
        new Promise<void>((resolve) => {
          let got: Buffer = Buffer.alloc(0);
          let done = false;
          const finish = (ok: boolean) => {
            if (done) return;
            done = true;
            if (ok) completed++;
            else failed++;
            s.destroy();
            resolve();
          };
          s.on('data', (d: Buffer) => {
            got = got.length === 0 ? d : Buffer.concat([got, d]);
            const end = got.indexOf('\r\n\r\n');
            if (end === -1) return;
            const head = got.subarray(0, end).toString('latin1');
            const m = /content-length:\s*(\d+)/i.exec(head);
            if (!m) return finish(false);
            if (got.length >= end + 4 + Number(m[1])) finish(head.startsWith('HTTP/1.1 200'));
          });
          s.on('error', () => finish(false));
          s.on('close', () => finish(false));
          s.write(req);
        }),
    ),
  );
  return { completed, failed, elapsedMs: performance.now() - start };
}

export interface StreamsResult {
  readonly ttft: number[];
  readonly gaps: number[];
  readonly failed: number;
  /** lines (tokens) delivered, and over how long */
  readonly lines: number;
  readonly elapsedMs: number;
}

export interface CancelResult {
  /** request id and when the client cut it (epoch ms, high resolution) */
  readonly aborts: { id: string; at: number }[];
}

export interface LoopResult {
  readonly completed: number;
  readonly failed: number;
  readonly elapsedMs: number;
  readonly latencies: number[];
}

const agent = new Agent({ connections: 4096, pipelining: 1, keepAliveTimeout: 30_000 });

let linesSeen = 0;

async function oneStream(url: string, path: string, body: string, ttft: number[], gaps: number[]): Promise<boolean> {
  const t0 = performance.now();
  const res = await request(url + path, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent });
  if (res.statusCode !== 200) {
    await res.body.dump();
    return false;
  }
  let last: number | undefined;
  for await (const chunk of res.body) {
    const now = performance.now();
    const lines = countLines(chunk as Buffer);
    linesSeen += lines;
    if (last === undefined) ttft.push(now - t0);
    else gaps.push(now - last);
    // several lines in one read arrived together: their gaps are 0
    for (let i = 1; i < lines; i++) gaps.push(0);
    last = now;
  }
  return true;
}

function countLines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i !== -1; i = b.indexOf(10, i + 1)) n++;
  return Math.max(1, n);
}

async function streams(t: Extract<Task, { kind: 'streams' }>): Promise<StreamsResult> {
  const ttft: number[] = [];
  const gaps: number[] = [];
  let failed = 0;
  const start = performance.now();
  const deadline = start + t.durationMs;
  linesSeen = 0;
  const worker = async (i: number) => {
    await new Promise((r) => setTimeout(r, (i / t.concurrency) * t.staggerMs));
    do {
      const ok = await oneStream(t.url, t.path, t.body, ttft, gaps).catch(() => false);
      if (!ok) failed++;
    } while (performance.now() < deadline);
  };
  await Promise.all(Array.from({ length: t.concurrency }, (_, i) => worker(i)));
  return { ttft, gaps, failed, lines: linesSeen, elapsedMs: performance.now() - start };
}

async function closedLoop(t: Extract<Task, { kind: 'closed-loop' }>): Promise<LoopResult> {
  const latencies: number[] = [];
  let failed = 0;
  const start = performance.now();
  const deadline = start + t.durationMs;
  const worker = async (url: string) => {
    while (performance.now() < deadline) {
      const t0 = performance.now();
      try {
        const res = await request(url + t.path, { method: 'POST', body: t.body, headers: { 'content-type': 'application/json' }, dispatcher: agent });
        await res.body.dump();
        if (res.statusCode === 200) latencies.push(performance.now() - t0);
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(t.targets.flatMap((url) => Array.from({ length: t.perTarget }, () => worker(url))));
  return { completed: latencies.length, failed, elapsedMs: performance.now() - start, latencies };
}

async function bodies(t: Extract<Task, { kind: 'bodies' }>): Promise<LoopResult> {
  const image = 'A'.repeat(t.bytes - 200);
  const body = Buffer.from(JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: 'describe', images: [image] }] }));
  return closedLoop({ kind: 'closed-loop', targets: [t.url], perTarget: t.concurrency, path: t.path, body: body.toString('latin1'), durationMs: t.durationMs });
}

const epoch = () => performance.timeOrigin + performance.now();
const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Start a stream and resolve once its first chunk is in; the rest is read in the background. */
async function openStream(url: string, id: string, signal: AbortSignal): Promise<void> {
  const res = await request(`${url}/api/chat`, {
    method: 'POST',
    body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: id }] }),
    headers: { 'content-type': 'application/json', 'x-request-id': id },
    dispatcher: agent,
    signal,
  });
  const it = res.body[Symbol.asyncIterator]();
  await it.next();
  void (async () => {
    try {
      for (;;) if ((await it.next()).done) break;
    } catch {
      // cut on purpose
    }
  })();
}

/**
 * Client disconnects, one phase at a time, one at a time, each cut recorded. `queued` first fills
 * the gateway's slots with `fill` long streams so that the cut request is waiting in the queue.
 */
async function cancels(t: Extract<Task, { kind: 'cancel' }>): Promise<CancelResult> {
  const aborts: { id: string; at: number }[] = [];
  const fillers = new AbortController();
  if (t.phase === 'queued') await Promise.all(Array.from({ length: t.fill }, (_, i) => openStream(t.url, `${t.prefix}fill-${i}`, fillers.signal)));
  for (let i = 0; i < t.n; i++) {
    const id = `${t.prefix}${i}`;
    const ac = new AbortController();
    if (t.phase === 'streaming') {
      await openStream(t.url, id, ac.signal);
      await pause(30);
    } else {
      request(`${t.url}/api/chat`, {
        method: 'POST',
        body: JSON.stringify({ model: 'llama3.2', messages: [{ role: 'user', content: id }] }),
        headers: { 'content-type': 'application/json', 'x-request-id': id },
        dispatcher: agent,
        signal: ac.signal,
      }).catch(() => undefined);
      await pause(60);
    }
    aborts.push({ id, at: epoch() });
    ac.abort();
    await pause(40);
  }
  fillers.abort();
  return { aborts };
}

export interface FairnessResult {
  /** each light job's time from sending to its whole answer, ms */
  readonly light: number[];
  readonly heavyElapsedMs: number;
  readonly failed: number;
}

/** A heavy key floods the queue; a light key sends one job every so often until the flood ends. */
async function fairness(t: Extract<Task, { kind: 'fairness' }>): Promise<FairnessResult> {
  let failed = 0;
  const job = async (key: string, i: number): Promise<number> => {
    const t0 = performance.now();
    const res = await request(`${t.url}/api/chat`, {
      method: 'POST',
      body: JSON.stringify({ model: 'llama3.2', stream: false, messages: [{ role: 'user', content: `job ${i}` }] }),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      dispatcher: agent,
    });
    await res.body.dump();
    if (res.statusCode !== 200) failed++;
    return performance.now() - t0;
  };
  const start = performance.now();
  let floodDone = false;
  const flood = Promise.all(Array.from({ length: t.heavyJobs }, (_, i) => job(t.heavyKey, i))).then(() => {
    floodDone = true;
  });
  const light: Promise<number>[] = [];
  await pause(t.lightEveryMs);
  while (!floodDone) {
    light.push(job(t.lightKey, light.length));
    await pause(t.lightEveryMs);
  }
  await flood;
  const heavyElapsedMs = performance.now() - start;
  return { light: await Promise.all(light), heavyElapsedMs, failed };
}

export interface TraceResult {
  readonly elapsedMs: number;
  readonly failed: number;
}

/** Play a list of jobs (one model each) in order, `concurrency` at a time. */
async function trace(t: Extract<Task, { kind: 'trace' }>): Promise<TraceResult> {
  let next = 0;
  let failed = 0;
  const start = performance.now();
  const worker = async () => {
    for (let i = next++; i < t.models.length; i = next++) {
      const body = JSON.stringify({ model: t.models[i], stream: false, messages: [{ role: 'user', content: `job ${i}` }] });
      const res = await request(`${t.url}/api/chat`, { method: 'POST', body, headers: { 'content-type': 'application/json' }, dispatcher: agent });
      await res.body.dump();
      if (res.statusCode !== 200) failed++;
    }
  };
  await Promise.all(Array.from({ length: t.concurrency }, worker));
  return { elapsedMs: performance.now() - start, failed };
}

process.on('message', (task: Task) => {
  const run =
    task.kind === 'streams' ? streams(task) : task.kind === 'closed-loop' ? closedLoop(task) : task.kind === 'cancel' ? cancels(task) : task.kind === 'trace' ? trace(task) : task.kind === 'fairness' ? fairness(task) : task.kind === 'burst' ? burst(task) : bodies(task);
  run.then(
    (result) => process.send!({ ok: true, result }),
    (err: unknown) => process.send!({ ok: false, error: String(err) }),
  );
});
