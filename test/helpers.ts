// Test fixtures: simulators and a gateway on port 0, log lines captured, everything closed in
// teardown. Tests drive them with real HTTP clients over loopback.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { connect, createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { pino } from 'pino';
import { request } from 'undici';
import { loadConfig } from '../dist/src/config/load.js';
import { Gateway } from '../dist/src/gateway.js';
import { Simulator, type SimulatorOptions } from '../dist/src/simulator/simulator.js';

export interface Teardown {
  teardown(fn: () => unknown): void;
}

export async function startSims(t: Teardown, n: number, opts: SimulatorOptions = {}): Promise<Simulator[]> {
  const sims = await Promise.all(Array.from({ length: n }, () => Simulator.start(opts)));
  t.teardown(() => Promise.all(sims.map((s) => s.stop())));
  return sims;
}

export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: () => void): void {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    cb();
  }
  requests(): Record<string, unknown>[] {
    return this.lines.filter((l) => l['msg'] === 'request');
  }
  /** the request line for an id, once written */
  async requestLine(id: string, timeoutMs = 5000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.requests().find((l) => l['req_id'] === id);
      if (found) return found;
      if (Date.now() > deadline) throw new Error(`no request log line for ${id}`);
      await sleep(10);
    }
  }
}

export interface GatewayFixture {
  gateway: Gateway;
  url: string;
  logs: LogCapture;
}

/** A gateway in front of `sims`; `flags` as the CLI takes them (camelCase keys, string values). */
export async function startGateway(
  t: Teardown,
  sims: readonly Simulator[],
  flags: Record<string, string> = {},
  extra: { file?: string | undefined; backendsFromFile?: boolean } = {},
): Promise<GatewayFixture> {
  const logs = new LogCapture();
  const backends = extra.backendsFromFile ? {} : { backends: sims.map((s, i) => `sim${i + 1}=${s.url}`).join(',') };
  const config = loadConfig({
    ...(extra.file ? { file: extra.file } : {}),
    env: {},
    flags: { ...backends, listen: '127.0.0.1:0', healthIntervalSeconds: '30', ...flags },
  });
  const logger = pino({ level: 'debug', base: undefined }, logs);
  const gateway = await Gateway.start({ config, logger });
  t.teardown(() => gateway.stop(0));
  return { gateway, url: gateway.url, logs };
}

/** A config file in a temporary directory, removed in teardown. */
export function configFile(t: Teardown, yaml: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, yaml);
  return file;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll until `pred` holds; for gateway-side state that emits no event. */
export async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await sleep(5);
  }
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json<T = Record<string, unknown>>(): T;
}

export async function post(url: string, path: string, body: unknown, opts: { headers?: Record<string, string>; signal?: AbortSignal } = {}): Promise<Reply> {
  const res = await request(url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...opts.headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(opts.signal ? { signal: opts.signal } : {}),
  });
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
}

export async function get(url: string, path: string): Promise<Reply> {
  const res = await request(url + path);
  const text = await res.body.text();
  return { status: res.statusCode, headers: res.headers, text, json: <T>() => JSON.parse(text) as T };
}

export function chat(prompt: string, extra: Record<string, unknown> = {}) {
  return { model: 'llama3.2', messages: [{ role: 'user', content: prompt }], ...extra };
}

/** A raw TCP client, for what an HTTP library will not send. */
export function rawConnect(url: string): Promise<Socket> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const s = connect(Number(u.port), u.hostname, () => resolve(s));
    s.once('error', reject);
  });
}

export function readAll(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    s.setEncoding('utf8');
    s.on('data', (d: string) => (out += d));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
  });
}

/** The gateway's own accounting is back to zero: no slot held, nobody queued. */
export async function settled(gateway: Gateway, what = 'accounting back to zero'): Promise<void> {
  await until(() => gateway.dispatcher.queueDepth === 0 && gateway.registry.all.every((b) => b.inFlight === 0 && b.pending.size === 0), what);
}

/** A small seeded PRNG (mulberry32), so a fuzz run can be replayed from its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A TCP port free on loopback now (for a server the test starts in another process). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createNetServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}
