// `npm run bench`: the gateway's added cost, measured against direct-to-backend in the same run.
// Simulated backends, the gateway and the load generator each run in processes of their own.
// Parameters come from the environment (BENCH_*); every scenario is bounded in time.
//
//   1. rps:      small non-streamed answers, many slots: requests/s and latency (autocannon).
//   2. one-slot: non-streamed requests on backends with one slot each; requests/s against the
//                backends' own capacity, and the dispatch gap seen by the backends.
//   3. streams:  200 and 2,000 concurrent streams; time to first token and inter-token gap,
//                gateway vs direct; gateway memory per open stream.
//   4. cancel:   client disconnect to the backend seeing it (or, queued, to the gateway dropping
//                the job), in each phase.
//   5. models:   a mixed-model trace (3 models, 4 backends that keep 1 loaded, 2 s cold loads):
//                total time and time spent loading, warm-first against plain round robin.
//   6. fairness: a heavy key floods the queue, a light key sends a job every so often: the light
//                key's wait with fair queueing (two keys) against plain FIFO (one shared key).
//   7. bodies:   event-loop delay of the gateway while 8 MiB bodies flow beside the streams,
//                with the piscina worker on and off.
//   8. compare:  the gateway beside nginx, HAProxy (plain streaming proxies) and a bare Node byte
//                copier, on the same backend in the same run: 200 streams with tokens 10 ms
//                apart (saturating), one request at a time, and small non-streamed answers;
//                CPU seconds per 100,000 relayed chunks and peak RSS of each proxy process.
//   9. queue:    4 one-slot backends answering in about 1 ms, and 500, 4,000, 9,000 and 16,000
//                jobs sent at once: jobs/s, gateway CPU per job and jobs lost, against HAProxy
//                with maxconn 1 per server and a long timeout queue. (16,000, not 20,000: this
//                machine's hard limit is 20,000 open files a process and every waiting job is a
//                connection; HAProxy keeps two a connection, so it stops at 9,000.
//                BENCH_QUEUE_SIZES changes the sizes.)
//  10. shared:   several instances sharing one Redis (issue 13): one request at a time through
//                one instance with Redis and one without, on one-slot backends (what a fleet-wide
//                slot claim adds, beside Redis's own round trip); and one-slot backends kept busy
//                through two instances sharing Redis against one instance alone: jobs/s and the
//                backends' idle gap between jobs. Skipped, and said so, without redis-server.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createServer as createHttpServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { round, summarize, type Summary } from './stats.js';
import type { BurstResult, CancelResult, FairnessResult, LoopResult, StreamsResult, Task, TraceResult } from './load-client.js';
import { createHash } from 'node:crypto';
import { tmpdir } from 'node:os';
import { chart } from './chart.js';
import { available, cpuSeconds, freePort, peakRssMiB, startProxy, startQueueingHaproxy, startQueueingHttpFloor, waitForPort, which, type ProxyName, type RunningProxy } from './proxies.js';
import { Redis } from 'ioredis';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..', '..');
const BIN = join(root, 'bin', 'ollama-gateway.js');

const env = (k: string, d: number) => (process.env[k] !== undefined ? Number(process.env[k]) : d);
const P = {
  streams: env('BENCH_STREAMS', 200),
  manyStreams: env('BENCH_MANY_STREAMS', 2000),
  manyTokenMs: env('BENCH_MANY_TOKEN_MS', 200),
  rpsConnections: env('BENCH_RPS_CONNECTIONS', 64),
  cancelSamples: env('BENCH_CANCEL_SAMPLES', 30),
  traceJobs: env('BENCH_TRACE_JOBS', 40),
  fairHeavyJobs: env('BENCH_FAIR_HEAVY_JOBS', 500),
  fairLightEveryMs: env('BENCH_FAIR_LIGHT_EVERY_MS', 1000),
  traceLoadMs: env('BENCH_TRACE_LOAD_MS', 2000),
  traceClients: env('BENCH_TRACE_CLIENTS', 12),
  tokens: env('BENCH_TOKENS', 50),
  tokenMs: env('BENCH_TOKEN_MS', 20),
  ttftMs: env('BENCH_TTFT_MS', 50),
  rounds: env('BENCH_ROUNDS', 2),
  streamSeconds: env('BENCH_STREAM_SECONDS', 5),
  slotBackends: env('BENCH_SLOT_BACKENDS', 4),
  slotServiceMs: env('BENCH_SLOT_SERVICE_MS', 5),
  loopSeconds: env('BENCH_LOOP_SECONDS', 5),
  bodyMiB: env('BENCH_BODY_MIB', 8),
  bodyConcurrency: env('BENCH_BODY_CONCURRENCY', 2),
  compareStreams: env('BENCH_COMPARE_STREAMS', 200),
  compareTokenMs: env('BENCH_COMPARE_TOKEN_MS', 10),
  compareRounds: env('BENCH_COMPARE_ROUNDS', 3),
  compareSeconds: env('BENCH_COMPARE_SECONDS', 5),
  sequentialSeconds: env('BENCH_SEQUENTIAL_SECONDS', 3),
  queueSizes: (process.env['BENCH_QUEUE_SIZES'] ?? '500,4000,9000,16000').split(',').map(Number),
  queueServiceMs: env('BENCH_QUEUE_SERVICE_MS', 1),
};

const children: ChildProcess[] = [];

// BENCH_PIN=1: the gateway gets a core of its own and the backends and load generator share the
// other, in both the direct and the gateway runs, so the figures show the gateway's own cost
// rather than three processes fighting over two cores.
const PIN = process.env['BENCH_PIN'] === '1' && cpus().length >= 2;
function pin(proc: ChildProcess, role: 'gateway' | 'other'): void {
  if (!PIN || proc.pid === undefined) return;
  execFileSync('taskset', ['-a', '-p', '-c', role === 'gateway' ? '1' : '0', String(proc.pid)], { stdio: 'ignore' });
}
process.on('exit', () => children.forEach((c) => c.kill('SIGKILL')));
// a hard cap on the whole run (BENCH_LIMIT_MINUTES; the whole bench takes about 20 minutes on a
// 2-core machine): it stops by itself, keeping the scenarios it finished (see main)
const LIMIT_MINUTES = env('BENCH_LIMIT_MINUTES', 45);
let onLimit = (): void => process.exit(2);
setTimeout(() => {
  console.error(`bench: time limit reached (${LIMIT_MINUTES} min, BENCH_LIMIT_MINUTES)`);
  onLimit();
}, LIMIT_MINUTES * 60_000).unref();

/** An OTLP/HTTP endpoint that takes every export and drops it (the traced gateway's collector). */
async function startOtlpSink(): Promise<{ url: string; close(): void }> {
  const server = createHttpServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  server.unref();
  return { url: `http://127.0.0.1:${(server.address() as { port: number }).port}/v1/traces`, close: () => server.close() };
}

async function startSim(args: string[]): Promise<{ url: string; proc: ChildProcess }> {
  const proc = spawn(process.execPath, [BIN, 'simulate', '--listen', '127.0.0.1:0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(proc);
  pin(proc, 'other');
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d) => {
      out += String(d);
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    proc.once('exit', () => reject(new Error(`simulator exited: ${out}`)));
  });
  return { url, proc };
}

interface GatewayProc {
  url: string;
  pid: number;
  ask<T>(type: string): Promise<T>;
  stop(): Promise<void>;
}

async function startGateway(flags: Record<string, string>, configFile?: string): Promise<GatewayProc> {
  // BENCH_CPU_PROF=dir writes a V8 CPU profile of the gateway process there (open in Chrome devtools),
  // and the queue scenario's node:http + undici floor's in dir/floor
  const prof = process.env['BENCH_CPU_PROF'];
  const execArgv = ['--expose-gc', ...(prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []), ...(process.env['BENCH_GATEWAY_NODE_ARGS']?.split(' ').filter(Boolean) ?? [])];
  const proc = fork(join(here, 'gateway-process.js'), [JSON.stringify({ listen: '127.0.0.1:0', ...flags }), ...(configFile ? [configFile] : [])], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  children.push(proc);
  pin(proc, 'gateway');
  const url = await new Promise<string>((resolve) => proc.once('message', (m: { url: string }) => resolve(m.url)));
  pin(proc, 'gateway'); // again, for the threads it started (piscina workers)
  const ask = <T>(type: string) =>
    new Promise<T>((resolve) => {
      proc.once('message', (m) => resolve(m as T));
      proc.send({ type });
    });
  const stop = () =>
    new Promise<void>((resolve) => {
      proc.once('exit', () => resolve());
      proc.send({ type: 'stop' });
    });
  return { url, pid: proc.pid!, ask, stop };
}

function runLoad<T>(task: Task): Promise<T> {
  const proc = fork(join(here, 'load-client.js'), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  children.push(proc);
  pin(proc, 'other');
  return new Promise<T>((resolve, reject) => {
    proc.once('message', (m: { ok: boolean; result?: T; error?: string }) => {
      proc.kill();
      if (m.ok) resolve(m.result!);
      else reject(new Error(m.error));
    });
    proc.send(task);
  });
}

async function simGaps(url: string): Promise<number[]> {
  const res = await fetch(`${url}/_sim/gaps`, { method: 'POST' });
  return ((await res.json()) as { gaps: number[] }).gaps;
}

const chatBody = (stream: boolean) => JSON.stringify({ model: 'llama3.2', stream, messages: [{ role: 'user', content: 'Why is the sky blue?' }] });
const fmt = (s: Summary) => ({ n: s.n, p50: round(s.p50), p90: round(s.p90), p99: round(s.p99), max: round(s.max), mean: round(s.mean) });

async function streamsScenario(count: number, tokenMs: number) {
  const sim = await startSim(['--parallel', '100000', '--ttft-ms', String(P.ttftMs), '--token-ms', String(tokenMs), '--tokens', String(P.tokens)]);
  // slots for every stream: this scenario measures relaying, not queueing
  const gw = await startGateway({ backends: sim.url, slotsPerBackend: String(count), queueSize: '100000' });
  const direct = { ttft: [] as number[], gaps: [] as number[], failed: 0 };
  const via = { ttft: [] as number[], gaps: [] as number[], failed: 0 };
  const streamMs = P.ttftMs + P.tokens * tokenMs;
  const task = (url: string, durationMs: number): Task => ({ kind: 'streams', url, path: '/api/chat', body: chatBody(true), concurrency: count, durationMs, staggerMs: streamMs });
  const roundMs = Math.max(P.streamSeconds * 1000, streamMs * 2);
  // (the gateway's resident memory before any load: what it costs to be up)
  const freshMiB = (await gw.ask<{ rss: number }>('stats')).rss / 2 ** 20;
  // warm up both paths (JIT, connection pools) before measuring
  await runLoad<StreamsResult>(task(sim.url, streamMs));
  await runLoad<StreamsResult>(task(gw.url, streamMs));
  const idleStats = await gw.ask<{ rss: number; live: number }>('stats');
  const idle = idleStats.rss;
  let peakRss = idle;
  let peakLive = idleStats.live;
  const eld: { p50: number; p99: number; max: number }[] = [];
  for (let r = 0; r < P.rounds; r++) {
    const d = await runLoad<StreamsResult>(task(sim.url, roundMs));
    for (const x of d.ttft) direct.ttft.push(x);
    for (const x of d.gaps) direct.gaps.push(x);
    direct.failed += d.failed;
    await gw.ask('reset');
    const g = await runLoad<StreamsResult>(task(gw.url, roundMs));
    const st = await gw.ask<{ eld: { p50: number; p99: number; max: number } }>('stats');
    eld.push(st.eld);
    for (const x of g.ttft) via.ttft.push(x);
    for (const x of g.gaps) via.gaps.push(x);
    via.failed += g.failed;
  }
  // memory with every stream open, in a round of its own: the sample forces a full garbage
  // collection (tens of ms with every stream stalled), which must not land in the latencies
  const load = runLoad<StreamsResult>(task(gw.url, streamMs * 2));
  await new Promise((r2) => setTimeout(r2, streamMs * 1.5));
  const mid = await gw.ask<{ rss: number; live: number }>('stats');
  peakRss = Math.max(peakRss, mid.rss);
  peakLive = Math.max(peakLive, mid.live);
  await load;
  const gatewayHwm = peakRssMiB([gw.pid]);
  await gw.stop();
  // the same streams through the two Node floors, each in a fresh process: their peak RSS is
  // what Node (and node:http with undici) needs for this many streams at all. Each carries them
  // as long as the gateway did (a warm-up and the measured rounds): a heap keeps growing for a while
  const floors: Record<string, number> = {};
  for (const name of ['node-floor', 'http-floor'] as const) {
    const p = await startProxy(name, Number(new URL(sim.url).port), children);
    await runLoad<StreamsResult>(task(p.url, streamMs + P.rounds * roundMs));
    floors[name] = round(peakRssMiB(p.pids()));
    await p.stop();
  }
  sim.proc.kill();
  const dT = summarize(direct.ttft);
  const gT = summarize(via.ttft);
  const dG = summarize(direct.gaps.filter((x) => x > 0));
  const gG = summarize(via.gaps.filter((x) => x > 0));
  return {
    params: { streams: count, tokens: P.tokens, tokenMs, ttftMs: P.ttftMs, rounds: P.rounds, seconds: roundMs / 1000 },
    ttft: { direct: fmt(dT), gateway: fmt(gT), added_p50: round(gT.p50 - dT.p50), added_p99: round(gT.p99 - dT.p99) },
    inter_token: { direct: fmt(dG), gateway: fmt(gG), added_p50: round(gG.p50 - dG.p50), added_p99: round(gG.p99 - dG.p99) },
    failed: { direct: direct.failed, gateway: via.failed },
    gateway_event_loop_delay_ms: { p99: round(Math.max(...eld.map((e) => e.p99))), max: round(Math.max(...eld.map((e) => e.max))) },
    rss: { idle_mib: round(idle / 2 ** 20), peak_mib: round(peakRss / 2 ** 20), per_stream_kib: round((peakRss - idle) / 1024 / count) },
    // VmHWM over the whole scenario (every sample above is a moment), beside the floors'
    peak_rss_mib: { gateway_fresh: round(freshMiB), gateway: round(gatewayHwm), ...floors },
    live: { idle_mib: round(idleStats.live / 2 ** 20), peak_mib: round(peakLive / 2 ** 20), per_stream_kib: round((peakLive - idleStats.live) / 1024 / count) },
  };
}

async function oneSlotScenario() {
  const sims = await Promise.all(
    Array.from({ length: P.slotBackends }, () => startSim(['--parallel', '1', '--ttft-ms', String(P.slotServiceMs), '--token-ms', '0', '--tokens', '1'])),
  );
  const urls = sims.map((s) => s.url);
  const body = chatBody(false);
  const durationMs = P.loopSeconds * 1000;
  // the backends' own capacity: exactly one request outstanding per backend, straight to it
  const direct = await runLoad<LoopResult>({ kind: 'closed-loop', targets: urls, perTarget: 1, path: '/api/chat', body, durationMs });
  const directGaps = (await Promise.all(urls.map(simGaps))).flat();
  const gw = await startGateway({ backends: urls.join(','), slotsPerBackend: '1', queueSize: '10000' });
  await Promise.all(urls.map(simGaps));
  // through the gateway: enough clients that its queue is never empty
  const via = await runLoad<LoopResult>({ kind: 'closed-loop', targets: [gw.url], perTarget: P.slotBackends * 4, path: '/api/chat', body, durationMs });
  const gwGaps = (await Promise.all(urls.map(simGaps))).flat();
  await gw.stop();
  sims.forEach((s) => s.proc.kill());
  const dRps = (direct.completed / direct.elapsedMs) * 1000;
  const gRps = (via.completed / via.elapsedMs) * 1000;
  return {
    params: { backends: P.slotBackends, serviceMs: P.slotServiceMs, seconds: P.loopSeconds },
    rps: { direct: round(dRps), gateway: round(gRps), ratio: round(gRps / dRps, 3) },
    latency_ms: { direct: fmt(summarize(direct.latencies)), gateway: fmt(summarize(via.latencies)) },
    backend_idle_gap_ms: { direct_client: fmt(summarize(directGaps)), gateway: fmt(summarize(gwGaps)) },
    failed: { direct: direct.failed, gateway: via.failed },
  };
}

async function bodiesScenario() {
  const out: Record<string, unknown> = {};
  for (const workers of ['1', '0']) {
    const sim = await startSim(['--parallel', '100000', '--ttft-ms', String(P.ttftMs), '--token-ms', String(P.tokenMs), '--tokens', String(P.tokens)]);
    const gw = await startGateway({ backends: sim.url, slotsPerBackend: '1024', queueSize: '10000', inspectWorkers: workers, maxBodyBytes: String(64 * 2 ** 20) });
    await gw.ask('reset');
    const durationMs = P.streamSeconds * 1000;
    const streamMs = P.ttftMs + P.tokens * P.tokenMs;
    const [streams, bodies] = await Promise.all([
      runLoad<StreamsResult>({ kind: 'streams', url: gw.url, path: '/api/chat', body: chatBody(true), concurrency: P.streams, durationMs, staggerMs: streamMs }),
      runLoad<LoopResult>({ kind: 'bodies', url: gw.url, path: '/api/chat', bytes: P.bodyMiB * 2 ** 20, concurrency: P.bodyConcurrency, durationMs }),
    ]);
    const stats = await gw.ask<{ eld: { p50: number; p99: number; max: number }; offloaded: number }>('stats');
    await gw.stop();
    sim.proc.kill();
    out[workers === '1' ? 'piscina_on' : 'piscina_off'] = {
      event_loop_delay_ms: { p50: round(stats.eld.p50), p99: round(stats.eld.p99), max: round(stats.eld.max) },
      bodies_sent: bodies.completed,
      bodies_failed: bodies.failed,
      offloaded: stats.offloaded,
      stream_ttft_p99_ms: round(summarize(streams.ttft).p99),
      stream_gap_p99_ms: round(summarize(streams.gaps.filter((x) => x > 0)).p99),
    };
  }
  return { params: { streams: P.streams, bodyMiB: P.bodyMiB, concurrency: P.bodyConcurrency }, ...out };
}


/** autocannon in a process of its own, JSON out. */
async function autocannon(url: string, connections: number, seconds: number, body: string) {
  const bin = join(root, 'node_modules', 'autocannon', 'autocannon.js');
  const proc = spawn(process.execPath, [bin, '--json', '-c', String(connections), '-d', String(seconds), '-m', 'POST', '-H', 'content-type=application/json', '-b', body, `${url}/api/chat`], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  children.push(proc);
  pin(proc, 'other');
  let out = '';
  proc.stdout!.on('data', (d) => (out += String(d)));
  await new Promise((r) => proc.once('exit', r));
  const j = JSON.parse(out) as { requests: { average: number }; latency: { p50: number; p99: number; average: number }; non2xx: number; errors: number };
  return { rps: j.requests.average, p50: j.latency.p50, p99: j.latency.p99, non2xx: j.non2xx, errors: j.errors };
}

async function rpsScenario() {
  const sim = await startSim(['--parallel', '100000', '--ttft-ms', '0', '--token-ms', '0', '--tokens', '3']);
  const gw = await startGateway({ backends: sim.url, slotsPerBackend: String(P.rpsConnections), queueSize: '10000' });
  const body = chatBody(false);
  await autocannon(sim.url, P.rpsConnections, 1, body); // warm-up
  await autocannon(gw.url, P.rpsConnections, 1, body);
  const direct = await autocannon(sim.url, P.rpsConnections, P.loopSeconds, body);
  const via = await autocannon(gw.url, P.rpsConnections, P.loopSeconds, body);
  await gw.stop();
  sim.proc.kill();
  return {
    params: { connections: P.rpsConnections, seconds: P.loopSeconds },
    direct: { rps: round(direct.rps), p50_ms: direct.p50, p99_ms: direct.p99, errors: direct.errors + direct.non2xx },
    gateway: { rps: round(via.rps), p50_ms: via.p50, p99_ms: via.p99, errors: via.errors + via.non2xx },
    ratio: round(via.rps / direct.rps, 3),
  };
}

async function cancelScenario() {
  const sim = await startSim(['--parallel', '100000', '--ttft-ms', '200', '--token-ms', '20', '--tokens', '100000']);
  const fill = 4;
  const gw = await startGateway({ backends: sim.url, slotsPerBackend: String(fill), queueSize: '1000' });
  const cancelsSeen = async () => ((await (await fetch(`${sim.url}/_sim/cancels`, { method: 'POST' })).json()) as { cancels: { id: string; at: number }[] }).cancels;
  await cancelsSeen();
  const out: Record<string, unknown> = { params: { samples: P.cancelSamples } };
  for (const phase of ['streaming', 'before_first_byte', 'queued'] as const) {
    const { aborts } = await runLoad<CancelResult>({ kind: 'cancel', url: gw.url, phase, n: P.cancelSamples, fill, prefix: `${phase}-` });
    let latencies: number[];
    if (phase === 'queued') {
      const { at } = await gw.ask<{ at: number[] }>('queue-cancels');
      latencies = aborts.map((a, i) => (at[i] ?? Number.NaN) - a.at);
    } else {
      await new Promise((r) => setTimeout(r, 200));
      const seen = new Map((await cancelsSeen()).map((c) => [c.id, c.at]));
      latencies = aborts.map((a) => (seen.get(a.id) ?? Number.NaN) - a.at);
    }
    const measured = latencies.filter((x) => Number.isFinite(x));
    out[phase] = { ...fmt(summarize(measured)), missing: latencies.length - measured.length };
  }
  await gw.stop();
  sim.proc.kill();
  return out;
}

type Target = { readonly name: 'direct' | ProxyName | 'gateway' | 'gateway+tracing'; readonly url: string; readonly pids: () => number[] };

const median = (xs: readonly number[]) => summarize(xs).p50;

/**
 * The gateway beside the proxies an ops team would otherwise put there, on one backend, in one
 * run. Every target is up for the whole scenario, and the rounds go round the targets in turn,
 * so that the machine's noise falls on all of them alike; each figure is the median of the
 * rounds. CPU is read from /proc for each proxy's own processes (none for direct).
 */
async function compareScenario() {
  const have = available();
  const streamSim = await startSim(['--parallel', '100000', '--ttft-ms', String(P.ttftMs), '--token-ms', String(P.compareTokenMs), '--tokens', String(P.tokens)]);
  const quickSim = await startSim(['--parallel', '100000', '--ttft-ms', '0', '--token-ms', '0', '--tokens', '3']);
  const proxies: RunningProxy[] = [];
  const missing: string[] = [];
  const targetsFor = async (sim: { url: string }, slots: number): Promise<Target[]> => {
    const port = Number(new URL(sim.url).port);
    const out: Target[] = [{ name: 'direct', url: sim.url, pids: () => [] }];
    for (const name of ['nginx', 'haproxy', 'node-floor', 'frames-floor', 'http-floor'] as const) {
      if (!have[name]) {
        if (!missing.includes(name)) missing.push(name);
        continue;
      }
      const p = await startProxy(name, port, children);
      proxies.push(p);
      out.push({ name, url: p.url, pids: p.pids });
    }
    const gw = await startGateway({ backends: sim.url, slotsPerBackend: String(slots), queueSize: '100000' });
    gateways.push(gw);
    out.push({ name: 'gateway', url: gw.url, pids: () => [gw.pid] });
    // the same with OpenTelemetry tracing on, exporting to a sink here: what tracing costs
    const traced = await startGateway({ backends: sim.url, slotsPerBackend: String(slots), queueSize: '100000', tracingEndpoint: otlpSink.url });
    gateways.push(traced);
    out.push({ name: 'gateway+tracing', url: traced.url, pids: () => [traced.pid] });
    return out;
  };
  const gateways: GatewayProc[] = [];
  const otlpSink = await startOtlpSink();
  const streamTargets = await targetsFor(streamSim, P.compareStreams * 2);
  const streamMs = P.ttftMs + P.tokens * P.compareTokenMs;
  const body = chatBody(true);
  const sat: Record<string, { ttft50: number[]; ttft99: number[]; gap99: number[]; tps: number[]; cpu100k: number[]; failed: number }> = {};
  const seq: Record<string, number[]> = {};
  for (const t of streamTargets) {
    sat[t.name] = { ttft50: [], ttft99: [], gap99: [], tps: [], cpu100k: [], failed: 0 };
    seq[t.name] = [];
    // warm-up: JIT, connection pools
    await runLoad<StreamsResult>({ kind: 'streams', url: t.url, path: '/api/chat', body, concurrency: P.compareStreams, durationMs: streamMs, staggerMs: streamMs });
  }
  for (let r = 0; r < P.compareRounds; r++) {
    for (const t of streamTargets) {
      const cpu0 = cpuSeconds(t.pids());
      const res = await runLoad<StreamsResult>({ kind: 'streams', url: t.url, path: '/api/chat', body, concurrency: P.compareStreams, durationMs: P.compareSeconds * 1000, staggerMs: streamMs });
      const cpu = cpuSeconds(t.pids()) - cpu0;
      const s = sat[t.name]!;
      s.ttft50.push(summarize(res.ttft).p50);
      s.ttft99.push(summarize(res.ttft).p99);
      s.gap99.push(summarize(res.gaps.filter((x) => x > 0)).p99);
      s.tps.push((res.lines / res.elapsedMs) * 1000);
      if (t.name !== 'direct') s.cpu100k.push((cpu / res.lines) * 100_000);
      s.failed += res.failed;
    }
  }
  const rss: Record<string, number> = {};
  for (const t of streamTargets) if (t.name !== 'direct') rss[t.name] = round(peakRssMiB(t.pids()));
  // one request at a time (a backend that answers at once, so the added time is not lost in
  // its timer's jitter), and small non-streamed answers on many connections
  const quickTargets = await targetsFor(quickSim, P.rpsConnections);
  const rps: Record<string, number[]> = {};
  const nonStreamed = chatBody(false);
  for (const t of quickTargets) {
    rps[t.name] = [];
    await autocannon(t.url, P.rpsConnections, 1, nonStreamed);
  }
  for (let r = 0; r < P.compareRounds; r++) {
    for (const t of quickTargets) {
      const res = await runLoad<StreamsResult>({ kind: 'streams', url: t.url, path: '/api/chat', body, concurrency: 1, durationMs: P.sequentialSeconds * 1000, staggerMs: 0 });
      seq[t.name]!.push(summarize(res.ttft).p50);
    }
    for (const t of quickTargets) rps[t.name]!.push((await autocannon(t.url, P.rpsConnections, P.loopSeconds, nonStreamed)).rps);
  }
  for (const g of gateways) await g.stop();
  for (const p of proxies) await p.stop();
  streamSim.proc.kill();
  quickSim.proc.kill();
  const names = streamTargets.map((t) => t.name);
  const d = sat['direct']!;
  const out: Record<string, unknown> = {
    params: { streams: P.compareStreams, tokens: P.tokens, tokenMs: P.compareTokenMs, ttftMs: P.ttftMs, rounds: P.compareRounds, seconds: P.compareSeconds, rpsConnections: P.rpsConnections },
    missing,
    targets: names,
  };
  for (const n of names) {
    const s = sat[n]!;
    out[n] = {
      ttft_p50_ms: round(median(s.ttft50)),
      ttft_p99_ms: round(median(s.ttft99)),
      gap_p99_ms: round(median(s.gap99)),
      tokens_per_s: round(median(s.tps)),
      cpu_s_per_100k_chunks: n === 'direct' ? null : round(median(s.cpu100k), 3),
      peak_rss_mib: rss[n] ?? null,
      sequential_ttft_p50_ms: round(median(seq[n]!), 3),
      sequential_added_ttft_p50_ms: round(median(seq[n]!) - median(seq['direct']!), 3),
      rps: round(median(rps[n]!)),
      failed: s.failed,
      ttft_p50_vs_direct: round(median(s.ttft50) / median(d.ttft50), 3),
    };
  }
  return out;
}

/**
 * Many jobs at once on one-slot backends: what a queue at scale costs. Each size is sent to the
 * gateway and to HAProxy (maxconn 1 a server) in turn, on the same four backends.
 */
const HAPROXY_MAXCONN = 9900;

async function queueScenario() {
  const sims = await Promise.all(Array.from({ length: 4 }, () => startSim(['--parallel', '1', '--ttft-ms', String(P.queueServiceMs), '--token-ms', '0', '--tokens', '1'])));
  const urls = sims.map((x) => x.url);
  const biggest = Math.max(...P.queueSizes);
  const file = join(tmpdir(), `ogw-bench-queue-${process.pid}.yaml`);
  writeFileSync(file, `backends:\n${urls.map((u) => `  - {url: "${u}"}`).join('\n')}\nlimits: {max_connections: ${biggest + 1000}}\nqueue: {size: ${biggest * 2}}\n`);
  const gw = await startGateway({ slotsPerBackend: '1' }, file);
  const targets: { name: string; url: string; pids: () => number[] }[] = [{ name: 'gateway', url: gw.url, pids: () => [gw.pid] }];
  let haproxy: RunningProxy | undefined;
  if (available().haproxy) {
    // HAProxy keeps two descriptors a connection: this machine's 20,000 bound it below 10,000
    haproxy = await startQueueingHaproxy(urls.map((u) => Number(new URL(u).port)), children, Math.min(biggest + 500, HAPROXY_MAXCONN));
    targets.push({ name: 'haproxy', url: haproxy.url, pids: haproxy.pids });
  }
  // the floor of a queue in Node: node:http, undici and a FIFO array, nothing else
  const floor = await startQueueingHttpFloor(urls, children);
  pin(children[children.length - 1]!, 'gateway');
  targets.push({ name: 'http-floor', url: floor.url, pids: floor.pids });
  const body = chatBody(false);
  const out: Record<string, any> = { params: { backends: 4, serviceMs: P.queueServiceMs, sizes: P.queueSizes }, missing: haproxy ? [] : ['haproxy'] };
  for (const t of targets) await runLoad<BurstResult>({ kind: 'burst', url: t.url, path: '/api/chat', body, n: 200 });
  for (const n of P.queueSizes) {
    for (const t of targets) {
      out[t.name] ??= {};
      if (t.name === 'haproxy' && n + 500 > HAPROXY_MAXCONN) {
        out[t.name][n] = null;
        continue;
      }
      const cpu0 = cpuSeconds(t.pids());
      const r = await runLoad<BurstResult>({ kind: 'burst', url: t.url, path: '/api/chat', body, n });
      const cpu = cpuSeconds(t.pids()) - cpu0;
      out[t.name][n] = { jobs_per_s: round((r.completed / r.elapsedMs) * 1000), cpu_ms_per_job: round((cpu * 1000) / n, 3), lost: n - r.completed, seconds: round(r.elapsedMs / 1000) };
    }
  }
  await gw.stop();
  await haproxy?.stop();
  await floor.stop();
  sims.forEach((x) => x.proc.kill());
  return out;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- report formatting of the JSON written above */
function queueTable(q: any): string[] {
  const names = ['gateway', ...(q.haproxy ? ['haproxy'] : []), ...(q['http-floor'] ? ['http-floor'] : [])];
  const first = q.params.sizes[0];
  return [
    `## 9. The queue at scale: ${q.params.backends} one-slot backends answering in about ${q.params.serviceMs} ms, jobs sent at once`,
    '',
    q.missing.length > 0 ? `Not installed here, so not measured: ${q.missing.join(', ')}.` : '',
    '',
    `| jobs at once | ${names.map((n) => `${n} jobs/s | ${n} CPU ms per job | ${n} lost`).join(' | ')} |`,
    `| --- | ${names.map(() => '--- | --- | ---').join(' | ')} |`,
    ...q.params.sizes.map(
      (n: number) =>
        `| ${n} | ${names.map((x) => (q[x][n] === null ? '— (past its 9,900 connections) | | ' : `${q[x][n].jobs_per_s} (${round(q[x][n].jobs_per_s / q[x][first].jobs_per_s, 2)}× of ${first}) | ${q[x][n].cpu_ms_per_job} | ${q[x][n].lost}`)).join(' | ')} |`,
    ),
    '',
  ];
}

function compareTable(c: any): string[] {
  const names: string[] = c.targets;
  const cell = (n: string, f: (x: any) => string) => f(c[n]);
  const row = (label: string, f: (x: any) => string) => `| ${label} | ${names.map((n) => cell(n, f)).join(' | ')} |`;
  const ratio = (a: number, b: number | undefined) => (b === undefined || b === null || !Number.isFinite(b) || b === 0 ? '' : ` (${round(a / b, 2)}×)`);
  const ng = c['nginx'];
  const floor = c['node-floor'];
  return [
    `## 8. Beside nginx, HAProxy, a bare Node byte copier, node:http passing the backend's frames through, and a bare node:http + undici relay: ${c.params.streams} streams, ${c.params.tokens} tokens ${c.params.tokenMs} ms apart, TTFT ${c.params.ttftMs} ms; medians of ${c.params.rounds} rounds of ${c.params.seconds} s`,
    '',
    c.missing.length > 0 ? `Not installed here, so not measured: ${c.missing.join(', ')}.` : '',
    '',
    `| figure | ${names.join(' | ')} |`,
    `| --- | ${names.map(() => '---').join(' | ')} |`,
    row('TTFT p50 (ms, × direct)', (x) => `${x.ttft_p50_ms} (${x.ttft_p50_vs_direct}×)`),
    row('TTFT p99 (ms, × nginx)', (x) => `${x.ttft_p99_ms}${ratio(x.ttft_p99_ms, ng?.ttft_p99_ms)}`),
    row('token gap p99 (ms)', (x) => `${x.gap_p99_ms}`),
    row('tokens/s delivered (× direct)', (x) => `${x.tokens_per_s} (${round(x.tokens_per_s / c.direct.tokens_per_s, 3)}×)`),
    row('CPU s per 100,000 chunks (× node copier)', (x) => (x.cpu_s_per_100k_chunks === null ? '—' : `${x.cpu_s_per_100k_chunks}${ratio(x.cpu_s_per_100k_chunks, floor?.cpu_s_per_100k_chunks)}`)),
    row('peak RSS (MiB)', (x) => (x.peak_rss_mib === null ? '—' : `${x.peak_rss_mib}`)),
    row('one at a time: added TTFT p50 (ms)', (x) => `${x.sequential_added_ttft_p50_ms}`),
    row(`small answers, ${c.params.rpsConnections} connections: req/s (× direct)`, (x) => `${x.rps} (${round(x.rps / c.direct.rps, 2)}×)`),
    row('failed streams', (x) => `${x.failed}`),
    '',
  ];
}

function streamsTable(s: any): string[] {
  return [
    `### ${s.params.streams} concurrent streams (${s.params.tokens} tokens ${s.params.tokenMs} ms apart, TTFT ${s.params.ttftMs} ms; each ends and is replaced; ${s.params.rounds} × ${s.params.seconds} s per side)`,
    '',
    '| figure | direct | gateway | added |',
    '| --- | --- | --- | --- |',
    `| time to first token p50 (ms) | ${s.ttft.direct.p50} | ${s.ttft.gateway.p50} | ${s.ttft.added_p50} |`,
    `| time to first token p99 (ms) | ${s.ttft.direct.p99} | ${s.ttft.gateway.p99} | ${s.ttft.added_p99} |`,
    `| inter-token gap p50 (ms) | ${s.inter_token.direct.p50} | ${s.inter_token.gateway.p50} | ${s.inter_token.added_p50} |`,
    `| inter-token gap p99 (ms) | ${s.inter_token.direct.p99} | ${s.inter_token.gateway.p99} | ${s.inter_token.added_p99} |`,
    `| failed streams | ${s.failed.direct} | ${s.failed.gateway} | |`,
    '',
    `Gateway event-loop delay during the run: p99 ${s.gateway_event_loop_delay_ms.p99} ms, max ${s.gateway_event_loop_delay_ms.max} ms. Memory with every stream open: live heap and buffers (after a forced GC) ${s.live.idle_mib} → ${s.live.peak_mib} MiB, **${s.live.per_stream_kib} KiB per stream**; RSS ${s.rss.idle_mib} → ${s.rss.peak_mib} MiB, ${s.rss.per_stream_kib} KiB per stream (RSS also holds garbage not yet collected).`,
    '',
    ...(s.peak_rss_mib
      ? [`Peak RSS over the scenario (VmHWM): gateway **${s.peak_rss_mib.gateway} MiB** (${s.peak_rss_mib.gateway_fresh} MiB when just started, before any load); the same streams through the bare Node byte copier ${s.peak_rss_mib['node-floor']} MiB and through node:http + undici with nothing else ${s.peak_rss_mib['http-floor']} MiB, each in a fresh process.`, '']
      : []),
  ];
}

async function modelsScenario() {
  // a seeded trace: runs of the same model, as real traffic has, switching at random
  let seed = 7;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const names = ['llama3.2:latest', 'qwen2.5:0.5b', 'phi4:14b'];
  const models: string[] = [];
  let current = names[0]!;
  for (let i = 0; i < P.traceJobs; i++) {
    if (rnd() < 0.35) current = names[Math.floor(rnd() * names.length)]!;
    models.push(current);
  }
  const out: Record<string, unknown> = { params: { jobs: P.traceJobs, backends: 4, loadMs: P.traceLoadMs, concurrency: P.traceClients, models: 3 } };
  for (const warm of ['yes', 'no']) {
    const sims = await Promise.all(
      Array.from({ length: 4 }, () =>
        startSim(['--models', names.join(','), '--max-loaded', '1', '--load-ms', String(P.traceLoadMs), '--ttft-ms', '20', '--token-ms', '10', '--tokens', '20']),
      ),
    );
    const gw = await startGateway({ backends: sims.map((x) => x.url).join(','), slotsPerBackend: '1', queueSize: '1000', warmFirst: warm });
    const r = await runLoad<TraceResult>({ kind: 'trace', url: gw.url, models, concurrency: P.traceClients });
    const stats = await Promise.all(sims.map(async (x) => ((await (await fetch(`${x.url}/_sim/stats`)).json()) as { stats: { loads: number; loadMs: number } }).stats));
    await gw.stop();
    sims.forEach((x) => x.proc.kill());
    out[warm === 'yes' ? 'warm_first' : 'round_robin'] = {
      total_s: round(r.elapsedMs / 1000),
      loads: stats.reduce((n, x) => n + x.loads, 0),
      loading_s: round(stats.reduce((n, x) => n + x.loadMs, 0) / 1000),
      failed: r.failed,
    };
  }
  const w = out['warm_first'] as { total_s: number };
  const rr = out['round_robin'] as { total_s: number };
  out['speedup'] = round(rr.total_s / w.total_s);
  return out;
}

async function fairnessScenario() {
  const heavyKey = 'ogw_bench-heavy-key-000000000000';
  const lightKey = 'ogw_bench-light-key-111111111111';
  const sha = (k: string) => createHash('sha256').update(k).digest('hex');
  const file = join(tmpdir(), `ogw-bench-keys-${process.pid}.yaml`);
  writeFileSync(file, `backends: [{url: "http://127.0.0.1:1"}]\nkeys:\n  - {name: heavy, sha256: "${sha(heavyKey)}"}\n  - {name: light, sha256: "${sha(lightKey)}"}\n`);
  const out: Record<string, unknown> = { params: { heavyJobs: P.fairHeavyJobs, lightEveryMs: P.fairLightEveryMs, backends: 2, serviceMs: 50 } };
  for (const mode of ['fair', 'fifo'] as const) {
    const sims = await Promise.all([0, 1].map(() => startSim(['--parallel', '1', '--ttft-ms', '10', '--token-ms', '10', '--tokens', '5'])));
    const gw = await startGateway({ backends: sims.map((x) => x.url).join(','), slotsPerBackend: '1', queueSize: '100000' }, file);
    // FIFO: the light job shares the heavy key, so both are one flow, served in arrival order
    const r = await runLoad<FairnessResult>({ kind: 'fairness', url: gw.url, heavyKey, lightKey: mode === 'fair' ? lightKey : heavyKey, heavyJobs: P.fairHeavyJobs, lightEveryMs: P.fairLightEveryMs });
    await gw.stop();
    sims.forEach((x) => x.proc.kill());
    out[mode] = { light: fmt(summarize(r.light)), flood_s: round(r.heavyElapsedMs / 1000), failed: r.failed };
  }
  return out;
}

function markdown(r: Record<string, any>): string {
  const lines = [`# Benchmark ${r['date']}`, '', `Machine: ${r['machine']}. Backends, gateway and load generator in separate processes on the same machine; direct-to-backend measured in the same run.`, '', '![figures](' + r['chart'] + ')', ''];
  if (r['unfinished']) lines.push(`**Cut short by its time limit** (BENCH_LIMIT_MINUTES): not measured in this run: ${r['unfinished'].join(', ')}.`, '');
  const rps = r['rps'];
  if (rps) {
    lines.push(
      `## 1. Small non-streamed answers, ${rps.params.connections} connections and slots (autocannon, ${rps.params.seconds} s)`,
      '',
      '| figure | direct | gateway | ratio |',
      '| --- | --- | --- | --- |',
      `| requests/s | ${rps.direct.rps} | ${rps.gateway.rps} | ${rps.ratio} |`,
      `| latency p50 / p99 (ms) | ${rps.direct.p50_ms} / ${rps.direct.p99_ms} | ${rps.gateway.p50_ms} / ${rps.gateway.p99_ms} | |`,
      `| errors | ${rps.direct.errors} | ${rps.gateway.errors} | |`,
      '',
    );
  }
  const o = r['one_slot'];
  if (o) {
    lines.push(
      `## 2. One slot per backend (${o.params.backends} backends, ${o.params.serviceMs} ms per request, ${o.params.seconds} s)`,
      '',
      '| figure | direct (one client per backend) | gateway | ratio |',
      '| --- | --- | --- | --- |',
      `| requests/s | ${o.rps.direct} | ${o.rps.gateway} | ${o.rps.ratio} |`,
      `| latency p50 (ms) | ${o.latency_ms.direct.p50} | ${o.latency_ms.gateway.p50} | |`,
      `| backend idle gap p50 (ms) | ${o.backend_idle_gap_ms.direct_client.p50} | ${o.backend_idle_gap_ms.gateway.p50} | |`,
      `| backend idle gap p99 (ms) | ${o.backend_idle_gap_ms.direct_client.p99} | ${o.backend_idle_gap_ms.gateway.p99} | |`,
      '',
      "The idle gap is measured by each backend: from the end of one answer to the arrival of the next request. Direct, it is the client's own turnaround; through the gateway, the dispatch gap (relay the end of the answer, free the slot, hand it to the next queued request, send it).",
      '',
    );
  }
  if (r['streams'] || r['streams_many']) lines.push('## 3. Streaming', '');
  if (r['streams']) lines.push(...streamsTable(r['streams']));
  if (r['streams_many']) lines.push(...streamsTable(r['streams_many']));
  const c = r['cancel'];
  if (c) {
    lines.push(
      `## 4. Cancellation: client disconnect to the backend seeing it (${c.params.samples} samples per phase)`,
      '',
      '| phase | p50 (ms) | p99 (ms) | max (ms) |',
      '| --- | --- | --- | --- |',
      `| streaming | ${c.streaming.p50} | ${c.streaming.p99} | ${c.streaming.max} |`,
      `| before the first byte | ${c.before_first_byte.p50} | ${c.before_first_byte.p99} | ${c.before_first_byte.max} |`,
      `| queued (to the gateway dropping the job; no backend ever sees it) | ${c.queued.p50} | ${c.queued.p99} | ${c.queued.max} |`,
      '',
    );
  }
  const m = r['models'];
  if (m) {
    lines.push(
      `## 5. Mixed-model trace: ${m.params.jobs} jobs, ${m.params.models} models, ${m.params.backends} backends that keep 1 model loaded, ${m.params.loadMs / 1000} s cold loads, ${m.params.concurrency} clients`,
      '',
      '| figure | warm-first | round robin |',
      '| --- | --- | --- |',
      `| total time (s) | ${m.warm_first.total_s} | ${m.round_robin.total_s} |`,
      `| model loads | ${m.warm_first.loads} | ${m.round_robin.loads} |`,
      `| time spent loading, all backends (s) | ${m.warm_first.loading_s} | ${m.round_robin.loading_s} |`,
      '',
      `Warm-first finishes the trace **${m.speedup}×** faster than round robin.`,
      '',
    );
  }
  const f = r['fairness'];
  if (f) {
    lines.push(
      `## 6. Fairness: a heavy key floods ${f.params.heavyJobs} jobs on ${f.params.backends} one-slot backends (~${f.params.serviceMs} ms a job); a light key sends one every ${f.params.lightEveryMs} ms`,
      '',
      "| light key's job, send to answer (ms) | fair queueing (two keys) | plain FIFO (one shared key) |",
      '| --- | --- | --- |',
      `| p50 | ${f.fair.light.p50} | ${f.fifo.light.p50} |`,
      `| p99 | ${f.fair.light.p99} | ${f.fifo.light.p99} |`,
      `| light jobs measured | ${f.fair.light.n} | ${f.fifo.light.n} |`,
      '',
    );
  }
  if (r['compare']) lines.push(...compareTable(r['compare']));
  if (r['queue']) lines.push(...queueTable(r['queue']));
  if (r['shared']) lines.push(...sharedTable(r['shared']));
  const b = r['bodies'];
  if (b) {
    lines.push(
      `## 7. Event-loop delay with ${b.params.bodyMiB} MiB bodies beside ${b.params.streams} streams`,
      '',
      '| figure | piscina on | piscina off |',
      '| --- | --- | --- |',
      `| event-loop delay p50 (ms) | ${b.piscina_on.event_loop_delay_ms.p50} | ${b.piscina_off.event_loop_delay_ms.p50} |`,
      `| event-loop delay p99 (ms) | ${b.piscina_on.event_loop_delay_ms.p99} | ${b.piscina_off.event_loop_delay_ms.p99} |`,
      `| event-loop delay max (ms) | ${b.piscina_on.event_loop_delay_ms.max} | ${b.piscina_off.event_loop_delay_ms.max} |`,
      `| bodies relayed | ${b.piscina_on.bodies_sent} | ${b.piscina_off.bodies_sent} |`,
      `| stream TTFT p99 (ms) | ${b.piscina_on.stream_ttft_p99_ms} | ${b.piscina_off.stream_ttft_p99_ms} |`,
      `| stream inter-token gap p99 (ms) | ${b.piscina_on.stream_gap_p99_ms} | ${b.piscina_off.stream_gap_p99_ms} |`,
      '',
    );
  }
  return lines.join('\n');
}

/**
 * Many instances, one fleet: what sharing slots and queue order through Redis costs one job, and
 * whether one-slot backends stay as busy through two instances as through one.
 */
async function sharedScenario() {
  const bin = which('redis-server');
  if (!bin) return { missing: ['redis-server'] };
  const port = await freePort();
  const redis = spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.push(redis);
  await waitForPort(port, redis, 'redis-server');
  const redisUrl = `redis://127.0.0.1:${port}`;
  // Redis's own round trip, from a client of the same library
  const client = new Redis(redisUrl);
  const pings: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const t0 = performance.now();
    await client.ping();
    pings.push(performance.now() - t0);
  }
  // and from idle, as a job's claim finds it (on a VM, waking a sleeping peer costs far more)
  const idlePings: number[] = [];
  for (let i = 0; i < 300; i++) {
    await new Promise((r) => setTimeout(r, 10));
    const t0 = performance.now();
    await client.ping();
    idlePings.push(performance.now() - t0);
  }
  client.disconnect();
  const sims = await Promise.all(Array.from({ length: P.slotBackends }, () => startSim(['--parallel', '1', '--ttft-ms', String(P.slotServiceMs), '--token-ms', '0', '--tokens', '1'])));
  const urls = sims.map((x) => x.url).join(',');
  const body = chatBody(false);
  const durationMs = P.loopSeconds * 1000;
  const alone = await startGateway({ backends: urls, slotsPerBackend: '1', queueSize: '10000' });
  const shared = await startGateway({ backends: urls, slotsPerBackend: '1', queueSize: '10000', redisUrl });
  const sequential = async (url: string) => {
    await runLoad<LoopResult>({ kind: 'closed-loop', targets: [url], perTarget: 1, path: '/api/chat', body, durationMs: 500 });
    return runLoad<LoopResult>({ kind: 'closed-loop', targets: [url], perTarget: 1, path: '/api/chat', body, durationMs });
  };
  const seqAlone = await sequential(alone.url);
  const seqShared = await sequential(shared.url);
  const sA = summarize(seqAlone.latencies);
  const sS = summarize(seqShared.latencies);
  // one-slot backends kept busy: enough clients that a queue is never empty
  const clients = P.slotBackends * 4;
  await Promise.all(sims.map((x) => simGaps(x.url)));
  const one = await runLoad<LoopResult>({ kind: 'closed-loop', targets: [alone.url], perTarget: clients, path: '/api/chat', body, durationMs });
  const oneGaps = (await Promise.all(sims.map((x) => simGaps(x.url)))).flat();
  await alone.stop();
  const second = await startGateway({ backends: urls, slotsPerBackend: '1', queueSize: '10000', redisUrl });
  await Promise.all(sims.map((x) => simGaps(x.url)));
  const two = await runLoad<LoopResult>({ kind: 'closed-loop', targets: [shared.url, second.url], perTarget: clients / 2, path: '/api/chat', body, durationMs });
  const twoGaps = (await Promise.all(sims.map((x) => simGaps(x.url)))).flat();
  await shared.stop();
  await second.stop();
  sims.forEach((x) => x.proc.kill());
  redis.kill();
  const rps = (r: LoopResult) => round((r.completed / r.elapsedMs) * 1000);
  return {
    missing: [],
    params: { backends: P.slotBackends, serviceMs: P.slotServiceMs, seconds: P.loopSeconds, clients },
    redis_ping_ms: fmt(summarize(pings)),
    redis_idle_ping_ms: fmt(summarize(idlePings)),
    sequential_ms: { alone: fmt(sA), shared: fmt(sS), added_p50: round(sS.p50 - sA.p50, 3), added_p99: round(sS.p99 - sA.p99, 3) },
    busy: {
      one_instance: { jobs_per_s: rps(one), idle_gap_ms: fmt(summarize(oneGaps)), failed: one.failed },
      two_instances_shared: { jobs_per_s: rps(two), idle_gap_ms: fmt(summarize(twoGaps)), failed: two.failed },
      ratio: round(rps(two) / rps(one), 3),
    },
  };
}

/* eslint-disable @typescript-eslint/no-explicit-any -- report formatting of the JSON written above */
function sharedTable(x: any): string[] {
  if (x.missing.length > 0) return ['## 10. Many instances sharing Redis', '', `Not installed here, so not measured: ${x.missing.join(', ')}.`, ''];
  return [
    `## 10. Many instances sharing Redis: ${x.params.backends} one-slot backends answering in about ${x.params.serviceMs} ms`,
    '',
    `Redis's own round trip (ioredis PING): back to back p50 ${x.redis_ping_ms.p50} ms, p99 ${x.redis_ping_ms.p99} ms; one every 10 ms (both sides idle, as a lone job finds it) p50 ${x.redis_idle_ping_ms.p50} ms, p99 ${x.redis_idle_ping_ms.p99} ms.`,
    '',
    '| one request at a time (ms) | one instance alone | one instance with Redis | added |',
    '| --- | --- | --- | --- |',
    `| p50 | ${x.sequential_ms.alone.p50} | ${x.sequential_ms.shared.p50} | ${x.sequential_ms.added_p50} |`,
    `| p99 | ${x.sequential_ms.alone.p99} | ${x.sequential_ms.shared.p99} | ${x.sequential_ms.added_p99} |`,
    '',
    `| backends kept busy (${x.params.clients} clients) | jobs/s | backend idle gap p50 (ms) | idle gap p99 (ms) | failed |`,
    '| --- | --- | --- | --- | --- |',
    `| one instance, no Redis | ${x.busy.one_instance.jobs_per_s} | ${x.busy.one_instance.idle_gap_ms.p50} | ${x.busy.one_instance.idle_gap_ms.p99} | ${x.busy.one_instance.failed} |`,
    `| two instances sharing Redis | ${x.busy.two_instances_shared.jobs_per_s} (${x.busy.ratio}×) | ${x.busy.two_instances_shared.idle_gap_ms.p50} | ${x.busy.two_instances_shared.idle_gap_ms.p99} | ${x.busy.two_instances_shared.failed} |`,
    '',
  ];
}
/* eslint-enable @typescript-eslint/no-explicit-any */

const SCENARIOS: Record<string, [string, () => Promise<unknown>]> = {
  rps: ['rps', rpsScenario],
  'one-slot': ['one_slot', oneSlotScenario],
  streams: ['streams', () => streamsScenario(P.streams, P.tokenMs)],
  'many-streams': ['streams_many', () => streamsScenario(P.manyStreams, P.manyTokenMs)],
  cancel: ['cancel', cancelScenario],
  models: ['models', modelsScenario],
  fairness: ['fairness', fairnessScenario],
  bodies: ['bodies', bodiesScenario],
  compare: ['compare', compareScenario],
  queue: ['queue', queueScenario],
  shared: ['shared', sharedScenario],
};

async function main() {
  const only = process.argv.slice(2);
  for (const name of only) if (!SCENARIOS[name]) throw new Error(`unknown scenario ${name}; choose from ${Object.keys(SCENARIOS).join(', ')}`);
  const date = new Date().toISOString();
  const stamp = date.replace(/[:]/g, '-').replace(/\..*/, '');
  const results: Record<string, unknown> = {
    date,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, node ${process.version}${PIN ? ', gateway pinned to its own core' : ', all processes sharing the cores'}`,
    params: P,
    chart: `${stamp}.svg`,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  // written after every scenario: a run cut short (its time limit, a failure) keeps what it measured
  const save = () => {
    writeFileSync(join(dir, `${stamp}.json`), `${JSON.stringify(results, null, 2)}\n`);
    writeFileSync(join(dir, `${stamp}.svg`), chart(results));
    const md = markdown(results);
    writeFileSync(join(dir, `${stamp}.md`), md);
    writeFileSync(join(dir, 'latest.md'), md);
    return md;
  };
  const todo = Object.entries(SCENARIOS).filter(([name]) => only.length === 0 || only.includes(name));
  onLimit = () => {
    results['unfinished'] = todo.filter(([, [key]]) => results[key] === undefined).map(([name]) => name);
    save();
    process.exit(2);
  };
  for (const [name, [key, run]] of todo) {
    const began = Date.now();
    console.error(`bench: ${name} …`);
    results[key] = await run();
    console.error(`bench: ${name} took ${Math.round((Date.now() - began) / 1000)} s`);
    save();
  }
  console.log(save());
  process.exit(0);
}

void main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
