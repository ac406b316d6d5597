// A faithful stand-in for an Ollama server, for tests, the demo and benchmarks: the same routes,
// methods, status codes, content types, NDJSON and SSE framing and final-chunk fields as the
// real thing (shared/reference/ollama-api.md), a parallel limit like OLLAMA_NUM_PARALLEL with an
// unbounded FIFO behind it, configurable timing, fault switches, and counters of what it saw.
// Tests hold and release generations (`hold()` / `release()`) instead of sleeping.
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { runnerKey } from '../models/runner.js';
import { makeModel, openAIModel, psEntry, showBody, tagsEntry, type SimModel } from './catalog.js';
import { modelKey } from '../models/name.js';
import { multipartField } from '../inspect/multipart.js';

export interface SimulatorOptions {
  readonly host?: string;
  readonly port?: number;
  readonly models?: readonly string[];
  /** like OLLAMA_NUM_PARALLEL: generations at once; the rest wait in an unbounded FIFO */
  readonly parallel?: number;
  /** time to first token, ms (prompt processing; headers go out with the first token) */
  readonly ttftMs?: number;
  /** time between tokens, ms */
  readonly tokenMs?: number;
  /** tokens per answer when the request sets no `num_predict` */
  readonly tokens?: number;
  readonly version?: string;
  /** keep the bytes of every response, by request id (X-Request-Id) */
  readonly record?: boolean;
  /** like OLLAMA_MAX_LOADED_MODELS: models kept loaded; loading one more evicts the least recently used */
  readonly maxLoaded?: number;
  /** how long a cold model load takes, ms (one load at a time, as in Ollama) */
  readonly loadMs?: number;
  /** 'openai': behave as an OpenAI-compatible server (vLLM): `/v1/*` and `/health` only */
  readonly flavor?: 'ollama' | 'openai';
}

const OPENAI_SERVER_PATHS = new Set(['/v1/chat/completions', '/v1/completions', '/v1/embeddings', '/v1/models', '/health', '/v1/images/generations', '/v1/images/edits', '/v1/audio/transcriptions']);

interface LoadedModel {
  until: number;
  runner: string;
  lastUsed: number;
}

export interface Faults {
  /** generation routes accept the request and never answer */
  hangBeforeHeaders: boolean;
  /** after N tokens, stop sending (the connection stays open) */
  hangAfterTokens: number | undefined;
  /** generation routes answer 500 like a crashed runner */
  status500: boolean;
  /** after N tokens, an Ollama mid-stream `{"error": ...}` line, then the end */
  errorAfterTokens: number | undefined;
  /** after N tokens, the connection is destroyed (a backend that dies mid-stream) */
  killAfterTokens: number | undefined;
  /** stream lines that are not JSON, and no final chunk */
  garbage: boolean;
  /** end the stream without the final `done: true` chunk */
  noFinalChunk: boolean;
  /** `GET /` answers 500, so health probes fail while generations still work */
  probeFails: boolean;
  /** generation routes answer 503 "server busy" at once, as Ollama does past OLLAMA_MAX_QUEUE */
  status503: boolean;
  /** every request, probes included, is accepted and never answered (a hung box) */
  hangAll: boolean;
  /** SSE lines end with CRLF (`\r\n\r\n` between events), which SSE allows */
  sseCrlf: boolean;
  /** an SSE stream starts with one `data:` event of this many bytes */
  bigEventBytes: number | undefined;
}

export interface SimStats {
  /** generation requests received */
  requests: number;
  /** generation requests open right now (waiting for a parallel slot or generating) */
  active: number;
  maxActive: number;
  /** generation requests whose client went away before the end */
  cancelled: number;
  completed: number;
  tokensSent: number;
  /** all requests by path, generation or not */
  byPath: Record<string, number>;
  /** cold loads, and the time they took in all */
  loads: number;
  loadMs: number;
  /** models unloaded by a keep_alive 0 request */
  unloads: number;
}

export interface SeenRequest {
  readonly id: string;
  readonly method: string;
  readonly path: string;
  readonly model: string | undefined;
  /** the prompt or the last message's content: tests use it to tell jobs apart */
  readonly tag: string | undefined;
  readonly headers: IncomingMessage['headers'];
  readonly at: number;
  /** the body's `stream_options` as sent (OpenAI routes: did it ask for usage?) */
  readonly streamOptions: unknown;
}

const NOT_FOUND = '404 page not found';
const METHOD_NOT_ALLOWED = '405 method not allowed';
const WORDS = ['The', ' sky', ' is', ' blue', ' because', ' of', ' Rayleigh', ' scattering', ',', ' which', ' bends', ' short', ' waves', ' more', ' than', ' long', ' ones', '.'];

type Json = Record<string, unknown>;
type Handler = (req: IncomingMessage, res: ServerResponse, body: Json | undefined, seen: SeenRequest) => void;

const defaultFaults = (): Faults => ({
  hangBeforeHeaders: false,
  hangAfterTokens: undefined,
  status500: false,
  errorAfterTokens: undefined,
  killAfterTokens: undefined,
  garbage: false,
  noFinalChunk: false,
  probeFails: false,
  status503: false,
  hangAll: false,
  sseCrlf: false,
  bigEventBytes: undefined,
});

export class Simulator extends EventEmitter {
  readonly models: Map<string, SimModel>;
  readonly faults: Faults = defaultFaults();
  readonly stats: SimStats = { requests: 0, active: 0, maxActive: 0, cancelled: 0, completed: 0, tokensSent: 0, byPath: {}, loads: 0, loadMs: 0, unloads: 0 };
  readonly seen: SeenRequest[] = [];
  readonly recorded = new Map<string, Buffer[]>();
  parallel: number;
  ttftMs: number;
  tokenMs: number;
  tokens: number;
  readonly version: string;
  private readonly record: boolean;
  private server: Server;
  private readonly sockets = new Set<Socket>();
  private running = 0;
  private readonly slotWaiters: (() => void)[] = [];
  private held = false;
  private readonly gateWaiters: (() => void)[] = [];
  private readonly loaded = new Map<string, LoadedModel>();
  maxLoaded: number;
  loadMs: number;
  private loading: Promise<unknown> = Promise.resolve();
  readonly flavor: 'ollama' | 'openai';
  /** when the last generation ended with none left open (performance.now()), for idle gaps */
  private idleSince: number | undefined;
  /** ms between the end of one generation and the arrival of the next, when the server sat idle */
  readonly idleGaps: number[] = [];
  /** when each cancelled generation saw its client go (epoch ms, high resolution), by request id */
  readonly cancels: { id: string; at: number }[] = [];
  private host: string;
  private boundPort = 0;
  private seq = 0;

  private constructor(opts: SimulatorOptions) {
    super();
    this.flavor = opts.flavor ?? 'ollama';
    this.models = new Map((opts.models ?? ['llama3.2:latest', 'qwen2.5:0.5b', 'nomic-embed-text:latest']).map((n) => [this.key(n), makeModel(n, undefined, this.flavor === 'ollama')]));
    this.parallel = opts.parallel ?? 1;
    this.ttftMs = opts.ttftMs ?? 20;
    this.tokenMs = opts.tokenMs ?? 5;
    this.tokens = opts.tokens ?? 12;
    this.version = opts.version ?? '0.13.5';
    this.record = opts.record ?? false;
    this.maxLoaded = opts.maxLoaded ?? 3;
    this.loadMs = opts.loadMs ?? 0;
    this.host = opts.host ?? '127.0.0.1';
    this.boundPort = opts.port ?? 0;
    this.server = this.createServer();
  }

  /** Ollama's `llama3.2` is `llama3.2:latest`; an OpenAI-compatible server takes ids as they are. */
  key(name: string): string {
    return this.flavor === 'ollama' ? modelKey(name) : name;
  }

  static async start(opts: SimulatorOptions = {}): Promise<Simulator> {
    const sim = new Simulator(opts);
    await sim.listen();
    return sim;
  }

  get port(): number {
    return this.boundPort;
  }

  get url(): string {
    return `http://${this.host}:${this.boundPort}`;
  }

  /** Generations wait before their first token until `release()`. */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    for (const w of this.gateWaiters.splice(0)) w();
  }

  /** Let exactly one held generation through (the oldest). */
  releaseOne(): boolean {
    const w = this.gateWaiters.shift();
    w?.();
    return w !== undefined;
  }

  get waitingAtGate(): number {
    return this.gateWaiters.length;
  }

  setFaults(f: Partial<Faults>): void {
    Object.assign(this.faults, f);
  }

  resetFaults(): void {
    Object.assign(this.faults, defaultFaults());
  }

  /** Resolves when `pred` holds, checked after every event the simulator emits. */
  waitFor(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!pred()) return;
        cleanup();
        resolve();
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`simulator: condition not met within ${timeoutMs} ms (stats ${JSON.stringify(this.stats)})`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.off('change', check);
      };
      this.on('change', check);
    });
  }

  /** Stop listening and drop every connection: a backend that is down refuses connections. */
  async down(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      for (const s of this.sockets) s.destroy();
    });
  }

  /** Listen again on the same port. */
  async up(): Promise<void> {
    this.server = this.createServer();
    await this.listen();
  }

  async stop(): Promise<void> {
    this.release();
    await this.down();
  }

  private async listen(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.boundPort, this.host, () => {
        this.server.off('error', reject);
        this.boundPort = (this.server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  private createServer(): Server {
    const server = createServer({ keepAliveTimeout: 5_000, noDelay: true }, (req, res) => this.onRequest(req, res));
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    return server;
  }

  private changed(): void {
    this.emit('change');
  }

  // ---- routing ---------------------------------------------------------------------------

  private routes(): Record<string, Record<string, Handler>> {
    return {
      '/': { GET: (_q, r) => this.text(r, 200, 'Ollama is running'), HEAD: (_q, r) => this.text(r, 200, 'Ollama is running') },
      '/api/version': { GET: (_q, r) => this.json(r, 200, { version: this.version }), HEAD: (_q, r) => this.json(r, 200, { version: this.version }) },
      '/api/tags': { GET: (_q, r) => this.json(r, 200, { models: [...this.models.values()].map(tagsEntry) }), HEAD: (_q, r) => this.json(r, 200, {}) },
      '/api/ps': { GET: (_q, r) => this.json(r, 200, { models: this.psModels() }) },
      '/api/show': { POST: (q, r, b) => this.show(q, r, b) },
      '/api/generate': { POST: (q, r, b, s) => this.generate(q, r, b, s, 'generate') },
      '/api/chat': { POST: (q, r, b, s) => this.generate(q, r, b, s, 'chat') },
      '/api/embed': { POST: (q, r, b, s) => this.embed(q, r, b, s, 'embed') },
      '/api/embeddings': { POST: (q, r, b, s) => this.embed(q, r, b, s, 'embeddings') },
      '/api/pull': { POST: (_q, r, b) => this.pull(r, b) },
      '/api/delete': { DELETE: (_q, r, b) => this.remove(r, b) },
      '/v1/chat/completions': { POST: (q, r, b, s) => this.generate(q, r, b, s, 'openai-chat') },
      '/v1/completions': { POST: (q, r, b, s) => this.generate(q, r, b, s, 'openai-completion') },
      '/v1/embeddings': { POST: (q, r, b, s) => this.embed(q, r, b, s, 'openai') },
      '/v1/messages': { POST: (q, r, b, s) => this.generate(q, r, b, s, 'anthropic') },
      '/v1/responses': { POST: (q, r, b, s) => this.generate(q, r, b, s, 'responses') },
      '/v1/images/generations': { POST: (q, r, b, s) => this.gpuJob(q, r, b, s, 'image') },
      '/v1/images/edits': { POST: (q, r, b, s) => this.gpuJob(q, r, b, s, 'image') },
      '/v1/audio/transcriptions': { POST: (q, r, b, s) => this.gpuJob(q, r, b, s, 'transcription') },
      '/v1/models': { GET: (_q, r) => this.json(r, 200, { object: 'list', data: this.models.size ? [...this.models.values()].map(openAIModel) : null }, 'application/json') },
    };
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://sim');
    const path = url.pathname;
    this.stats.byPath[path] = (this.stats.byPath[path] ?? 0) + 1;
    this.changed();
    if (path.startsWith('/_sim/')) return this.control(req, res, path);
    if (this.faults.hangAll) {
      this.seen.push({ id: 'hung', method: req.method ?? 'GET', path, model: undefined, tag: undefined, headers: req.headers, at: performance.now(), streamOptions: undefined });
      return;
    }
    if (this.flavor === 'openai' && !OPENAI_SERVER_PATHS.has(path) && !path.startsWith('/v1/models/')) {
      // FastAPI's 404, as vLLM answers it
      return this.json(res, 404, { detail: 'Not Found' }, 'application/json');
    }
    if (path === '/health') {
      if (this.faults.probeFails) return this.text(res, 500, 'unhealthy');
      res.writeHead(200, { 'content-length': 0 });
      res.end();
      return;
    }
    if (path === '/' && this.faults.probeFails) {
      this.text(res, 500, 'simulated probe failure');
      return;
    }
    let route = this.routes()[path];
    let modelId: string | undefined;
    if (!route && path.startsWith('/v1/models/')) {
      modelId = decodeURIComponent(path.slice('/v1/models/'.length));
      route = { GET: (_q, r) => this.openAIModel(r, modelId!) };
    }
    if (!route) return this.text(res, 404, NOT_FOUND);
    const handler = route[req.method ?? 'GET'];
    if (!handler) return this.text(res, 405, METHOD_NOT_ALLOWED);

    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Json | undefined;
      const ct = req.headers['content-type'] ?? '';
      if (req.method === 'POST' && ct.toLowerCase().startsWith('multipart/form-data')) {
        body = { model: multipartField(Buffer.concat(chunks), ct, 'model') };
      } else if (req.method === 'POST' || req.method === 'DELETE') {
        const raw = Buffer.concat(chunks).toString('utf8');
        if (raw.length === 0) return this.error(res, path, 400, 'missing request body');
        try {
          const parsed: unknown = JSON.parse(raw);
          if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('json: cannot unmarshal into Go value of type api.Request');
          body = parsed as Json;
        } catch (err) {
          return this.error(res, path, 400, (err as Error).message);
        }
      }
      const id = typeof req.headers['x-request-id'] === 'string' ? req.headers['x-request-id'] : `sim-${++this.seq}`;
      const seen: SeenRequest = {
        id,
        method: req.method ?? 'GET',
        path,
        model: typeof body?.['model'] === 'string' ? (body['model'] as string) : undefined,
        tag: tagOf(body),
        headers: req.headers,
        at: performance.now(),
        streamOptions: body?.['stream_options'],
      };
      this.seen.push(seen);
      if (this.seen.length > 10_000) this.seen.splice(0, 5_000);
      handler(req, res, body, seen);
    });
  }

  private control(req: IncomingMessage, res: ServerResponse, path: string): void {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json) : {};
      switch (path) {
        case '/_sim/stats':
          return this.json(res, 200, { stats: this.stats, faults: this.faults, parallel: this.parallel });
        case '/_sim/faults':
          this.setFaults(body as Partial<Faults>);
          return this.json(res, 200, this.faults);
        case '/_sim/reset':
          this.resetFaults();
          Object.assign(this.stats, { requests: 0, maxActive: this.stats.active, cancelled: 0, completed: 0, tokensSent: 0, byPath: {}, loads: 0, loadMs: 0, unloads: 0 });
          return this.json(res, 200, this.stats);
        case '/_sim/gaps': {
          const gaps = this.idleGaps.splice(0);
          this.idleSince = undefined;
          return this.json(res, 200, { gaps });
        }
        case '/_sim/cancels':
          return this.json(res, 200, { cancels: this.cancels.splice(0) });
        case '/_sim/timing':
          if (typeof body['ttftMs'] === 'number') this.ttftMs = body['ttftMs'];
          if (typeof body['tokenMs'] === 'number') this.tokenMs = body['tokenMs'];
          if (typeof body['tokens'] === 'number') this.tokens = body['tokens'];
          return this.json(res, 200, { ttftMs: this.ttftMs, tokenMs: this.tokenMs, tokens: this.tokens });
        default:
          return this.text(res, 404, NOT_FOUND);
      }
    });
  }

  // ---- plain answers ---------------------------------------------------------------------

  private text(res: ServerResponse, status: number, body: string): void {
    res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
    res.end(res.req.method === 'HEAD' ? undefined : body);
  }

  private json(res: ServerResponse, status: number, body: unknown, contentType = 'application/json; charset=utf-8'): void {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
    res.end(res.req.method === 'HEAD' ? undefined : text);
  }

  /** Errors in the route's own shape: native `{"error"}` or OpenAI's object. */
  private error(res: ServerResponse, path: string, status: number, message: string): void {
    if (path === '/v1/messages') {
      const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : status === 503 ? 'overloaded_error' : 'api_error';
      this.json(res, status, { type: 'error', error: { type, message }, request_id: `req_${++this.seq}` }, 'application/json');
    } else if (path.startsWith('/v1/')) {
      const type = status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : 'api_error';
      this.json(res, status, { error: { message, type, param: null, code: null } }, 'application/json');
    } else {
      this.json(res, status, { error: message });
    }
  }

  private psModels() {
    const now = Date.now();
    return [...this.loaded.entries()]
      .sort((a, b) => b[1].until - a[1].until)
      .map(([name, l]) => psEntry(this.models.get(name)!, new Date(Math.max(l.until, now))));
  }

  /**
   * Make sure the model is loaded with these runner options; returns the load time in ns. One
   * load at a time; loading past `maxLoaded` evicts the least recently used model.
   */
  private async ensureLoaded(name: string, runner: string, signal: AbortSignal): Promise<number> {
    const hit = this.loaded.get(name);
    if (hit && hit.runner === runner) {
      hit.lastUsed = performance.now();
      hit.until = Date.now() + 300_000;
      return 1_200_000;
    }
    const turn = this.loading.then(async () => {
      const again = this.loaded.get(name);
      if (again && again.runner === runner) return 1_200_000;
      this.loaded.delete(name);
      while (this.loaded.size >= Math.max(1, this.maxLoaded)) {
        const lru = [...this.loaded.entries()].sort((a, b) => a[1].lastUsed - b[1].lastUsed)[0]!;
        this.loaded.delete(lru[0]);
      }
      const t0 = performance.now();
      await sleep(this.loadMs, signal);
      this.loaded.set(name, { until: Date.now() + 300_000, runner, lastUsed: performance.now() });
      this.stats.loads++;
      this.stats.loadMs += performance.now() - t0;
      return Math.round((performance.now() - t0) * 1e6);
    });
    this.loading = turn.catch(() => undefined);
    return turn;
  }

  /** As Ollama answers a request with nothing to generate: one JSON object, `done_reason` load or unload. */
  private loadOrUnload(res: ServerResponse, kind: 'chat' | 'generate', asked: string, name: string, runner: string, keepAlive: unknown): void {
    const zero = keepAlive === 0 || (typeof keepAlive === 'string' && /^0+(\.0*)?(ns|us|ms|s|m|h)?$/.test(keepAlive.trim()));
    const answer = (reason: 'load' | 'unload') =>
      this.json(
        res,
        200,
        kind === 'chat'
          ? { model: asked, created_at: now(), message: { role: 'assistant', content: '' }, done: true, done_reason: reason }
          : { model: asked, created_at: now(), response: '', done: true, done_reason: reason },
      );
    if (zero) {
      this.loaded.delete(name);
      this.stats.unloads++;
      this.changed();
      return answer('unload');
    }
    void this.ensureLoaded(name, runner, new AbortController().signal).then(() => {
      this.changed();
      answer('load');
    });
  }

  private show(_req: IncomingMessage, res: ServerResponse, body: Json | undefined): void {
    const name = typeof body?.['model'] === 'string' ? body['model'] : typeof body?.['name'] === 'string' ? body['name'] : '';
    const m = this.models.get(this.key(name));
    if (!m) return this.json(res, 404, { error: `model '${name}' not found` });
    this.json(res, 200, showBody(m));
  }

  /** `/api/pull`: progress as NDJSON (stream defaults on), then the model is there. */
  private pull(res: ServerResponse, body: Json | undefined): void {
    const name = typeof body?.['model'] === 'string' ? body['model'] : typeof body?.['name'] === 'string' ? body['name'] : '';
    if (!name) return this.json(res, 400, { error: 'model is required' });
    this.models.set(this.key(name), makeModel(name, new Date().toISOString(), this.flavor === 'ollama'));
    const steps = [{ status: 'pulling manifest' }, { status: 'verifying sha256 digest' }, { status: 'writing manifest' }, { status: 'success' }];
    if (body?.['stream'] === false) return this.json(res, 200, { status: 'success' });
    res.writeHead(200, { 'content-type': 'application/x-ndjson' });
    for (const step of steps) res.write(`${JSON.stringify(step)}\n`);
    res.end();
  }

  /** `DELETE /api/delete` with a JSON body: 200 and an empty body, or 404. */
  private remove(res: ServerResponse, body: Json | undefined): void {
    const name = typeof body?.['model'] === 'string' ? body['model'] : typeof body?.['name'] === 'string' ? body['name'] : '';
    if (!this.models.delete(this.key(name))) return this.json(res, 404, { error: `model '${name}' not found` });
    this.loaded.delete(this.key(name));
    res.writeHead(200, { 'content-length': 0 });
    res.end();
  }

  private openAIModel(res: ServerResponse, id: string): void {
    const m = this.models.get(this.key(id));
    if (!m) return this.error(res, '/v1/', 404, `model '${id}' not found`);
    this.json(res, 200, openAIModel(m), 'application/json');
  }

  // ---- slots -----------------------------------------------------------------------------

  private acquireSlot(): Promise<void> {
    if (this.running < this.parallel) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.slotWaiters.push(resolve));
  }

  private releaseSlot(): void {
    const next = this.slotWaiters.shift();
    if (next) next();
    else this.running--;
  }

  private gate(signal: AbortSignal): Promise<void> {
    if (!this.held || signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const pass = () => {
        signal.removeEventListener('abort', leave);
        resolve();
      };
      const leave = () => {
        const i = this.gateWaiters.indexOf(pass);
        if (i !== -1) this.gateWaiters.splice(i, 1);
        resolve();
      };
      this.gateWaiters.push(pass);
      signal.addEventListener('abort', leave, { once: true });
      this.changed();
    });
  }

  // ---- generation ------------------------------------------------------------------------

  /** An image or a transcription: a GPU job that holds a parallel slot like a generation. */
  private gpuJob(req: IncomingMessage, res: ServerResponse, body: Json | undefined, seen: SeenRequest, kind: 'image' | 'transcription'): void {
    const name = typeof body?.['model'] === 'string' ? body['model'] : '';
    if (!this.models.get(this.key(name))) return this.error(res, seen.path, 404, `model '${name}' not found`);
    const run = this.track(req, res, seen);
    void run(async (alive, signal) => {
      await this.acquireSlot();
      try {
        await this.gate(signal);
        if (!alive()) return;
        await sleep(this.ttftMs, signal);
        if (!alive()) return;
        if (kind === 'image') this.json(res, 200, { created: Math.floor(Date.now() / 1000), data: [{ b64_json: Buffer.from('png').toString('base64') }] }, 'application/json');
        else this.json(res, 200, { text: 'The sky is blue.' }, 'application/json');
        this.stats.completed++;
      } finally {
        this.releaseSlot();
      }
    });
  }

  private embed(req: IncomingMessage, res: ServerResponse, body: Json | undefined, seen: SeenRequest, kind: 'embed' | 'embeddings' | 'openai'): void {
    const name = typeof body?.['model'] === 'string' ? body['model'] : '';
    const m = this.models.get(this.key(name));
    if (!m) {
      const msg = kind === 'openai' ? `model '${name}' not found` : `model "${name}" not found, try pulling it first`;
      return this.error(res, kind === 'openai' ? '/v1/' : '/api/', 404, msg);
    }
    const input = kind === 'embeddings' ? body?.['prompt'] : body?.['input'];
    const inputs = Array.isArray(input) ? input.map(String) : [String(input ?? '')];
    const run = this.track(req, res, seen);
    void run(async (alive, signal) => {
      const t0 = process.hrtime.bigint();
      await this.acquireSlot();
      try {
        await this.gate(signal);
        if (!alive()) return;
        const loadNs = await this.ensureLoaded(m.name, runnerKey(body?.['options'] as Json | undefined), signal);
        if (!alive()) return;
        await sleep(this.ttftMs, signal);
        if (!alive()) return;
        const vectors = inputs.map((s) => vector(s, 8));
        const tokens = inputs.reduce((n, s) => n + Math.max(1, Math.ceil(s.length / 4)), 0);
        const total = Number(process.hrtime.bigint() - t0);
        if (kind === 'embeddings') this.json(res, 200, { embedding: vectors[0] });
        else if (kind === 'embed') this.json(res, 200, { model: name, embeddings: vectors, total_duration: total, load_duration: loadNs, prompt_eval_count: tokens });
        else
          this.json(
            res,
            200,
            {
              object: 'list',
              // as Ollama's ToEmbeddingList: base64 of little-endian float32 when asked (the openai
              // client asks by default), floats otherwise
              data: vectors.map((e, i) => ({ object: 'embedding', embedding: body?.['encoding_format'] === 'base64' ? float32Base64(e) : e, index: i })),
              model: name,
              usage: { prompt_tokens: tokens, total_tokens: tokens },
            },
            'application/json',
          );
        this.stats.completed++;
      } finally {
        this.releaseSlot();
      }
    });
  }

  /** Wrap a generation: counts it, notices the client leaving, records what was written. */
  private track(req: IncomingMessage, res: ServerResponse, seen: SeenRequest) {
    this.stats.requests++;
    if (this.stats.active === 0 && this.idleSince !== undefined) {
      this.idleGaps.push(seen.at - this.idleSince);
      if (this.idleGaps.length > 100_000) this.idleGaps.splice(0, 50_000);
    }
    this.stats.active++;
    this.stats.maxActive = Math.max(this.stats.maxActive, this.stats.active);
    this.emit('request', seen);
    this.changed();
    const closed = new AbortController();
    let finished = false;
    res.once('close', () => {
      closed.abort();
      if (!res.writableFinished && !finished) {
        this.stats.cancelled++;
        this.cancels.push({ id: seen.id, at: performance.timeOrigin + performance.now() });
        if (this.cancels.length > 100_000) this.cancels.splice(0, 50_000);
        this.emit('cancel', seen);
      }
      this.stats.active--;
      if (this.stats.active === 0) this.idleSince = performance.now();
      this.changed();
    });
    res.once('finish', () => {
      finished = true;
    });
    if (this.record) {
      const parts: Buffer[] = [];
      this.recorded.set(seen.id, parts);
      const write = res.write.bind(res) as (chunk: unknown, ...rest: unknown[]) => boolean;
      const end = res.end.bind(res) as (chunk?: unknown, ...rest: unknown[]) => ServerResponse;
      res.write = ((chunk: unknown, ...rest: unknown[]) => {
        if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) parts.push(Buffer.from(chunk));
        return write(chunk, ...rest);
      }) as typeof res.write;
      res.end = ((chunk?: unknown, ...rest: unknown[]) => {
        if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) parts.push(Buffer.from(chunk));
        return end(chunk, ...rest);
      }) as typeof res.end;
    }
    void req;
    const alive = () => !closed.signal.aborted;
    return async (work: (alive: () => boolean, signal: AbortSignal) => Promise<void>) => {
      try {
        await work(alive, closed.signal);
      } catch (err) {
        if (alive()) res.destroy(err as Error);
      }
    };
  }

  private generate(
    req: IncomingMessage,
    res: ServerResponse,
    body: Json | undefined,
    seen: SeenRequest,
    kind: GenerationKind,
  ): void {
    // the OpenAI and Anthropic routes: SSE, streamed only when asked, `max_tokens`
    const openai = kind.startsWith('openai') || kind === 'anthropic' || kind === 'responses';
    const name = typeof body?.['model'] === 'string' ? body['model'] : '';
    if (!name) return this.error(res, seen.path, 400, 'model is required');
    const m = this.models.get(this.key(name));
    if (!m) return this.error(res, seen.path, 404, `model '${name}' not found`);
    if (m.embedding) return this.error(res, seen.path, 400, `"${name}" does not support ${kind === 'chat' || kind === 'openai-chat' ? 'chat' : 'generate'}`);
    const stream = openai ? body?.['stream'] === true : body?.['stream'] !== false;
    const options = (typeof body?.['options'] === 'object' && body['options'] !== null ? body['options'] : {}) as Json;
    // nothing to generate: Ollama's load (a preload) or, with keep_alive 0, unload (`ollama stop`)
    const nothing = kind === 'generate' ? !(typeof body?.['prompt'] === 'string' && body['prompt'] !== '') : kind === 'chat' ? !(Array.isArray(body?.['messages']) && (body['messages'] as unknown[]).length > 0) : false;
    if (nothing) return this.loadOrUnload(res, kind === 'chat' ? 'chat' : 'generate', name, m.name, runnerKey(options), body?.['keep_alive']);
    const maxTokens = kind === 'responses' ? body?.['max_output_tokens'] : openai ? body?.['max_tokens'] : options['num_predict'];
    const limit = typeof maxTokens === 'number' && maxTokens >= 0 ? maxTokens : undefined;
    const count = limit !== undefined ? Math.min(limit, this.tokens) : this.tokens;
    const calls = (kind === 'chat' || kind === 'openai-chat' || kind === 'anthropic') && toolCallFor(body) !== undefined;
    const doneReason = limit !== undefined && limit <= this.tokens ? 'length' : 'stop';
    const includeUsage = openai && typeof body?.['stream_options'] === 'object' && (body['stream_options'] as Json | null)?.['include_usage'] === true;
    const promptTokens = 10 + Math.ceil((seen.tag ?? '').length / 4);
    const format = new ChunkFormat(kind, name, promptTokens);
    // what the model decides: a call of a tool the last message names; reasoning first when asked
    format.call = kind === 'chat' || kind === 'openai-chat' || kind === 'anthropic' ? toolCallFor(body) : undefined;
    format.thinks = kind === 'chat' ? body?.['think'] !== undefined && body['think'] !== false : kind === 'openai-chat' ? typeof body?.['reasoning_effort'] === 'string' && body['reasoning_effort'] !== 'none' : false;
    const run = this.track(req, res, seen);

    void run(async (alive, signal) => {
      const t0 = process.hrtime.bigint();
      await this.acquireSlot();
      try {
        await this.gate(signal);
        if (!alive()) return;
        if (this.faults.hangBeforeHeaders) {
          await untilClosed(res);
          return;
        }
        if (this.faults.status500) {
          this.error(res, seen.path, 500, 'llama runner process has terminated: exit status 2');
          return;
        }
        if (this.faults.status503) {
          this.error(res, seen.path, 503, 'server busy, please try again.  maximum pending requests exceeded');
          return;
        }
        format.loadNs = await this.ensureLoaded(m.name, runnerKey(options), signal);
        if (!alive()) return;
        const promptStart = process.hrtime.bigint();
        await sleep(this.ttftMs, signal);
        if (!alive()) return;
        const promptNs = Number(process.hrtime.bigint() - promptStart);
        const evalStart = process.hrtime.bigint();
        if (!stream) {
          for (let i = 1; i < count; i++) {
            await sleep(this.tokenMs, signal);
            if (!alive()) return;
          }
          const text = Array.from({ length: count }, (_, i) => WORDS[i % WORDS.length]).join('');
          const evalNs = Number(process.hrtime.bigint() - evalStart);
          this.json(res, 200, format.whole(text, count, doneReason, Number(process.hrtime.bigint() - t0), promptNs, evalNs), openai ? 'application/json' : undefined);
          this.stats.tokensSent += count;
          this.stats.completed++;
          return;
        }
        res.writeHead(200, { 'content-type': openai ? 'text/event-stream' : 'application/x-ndjson', ...(openai ? { 'cache-control': 'no-cache', connection: 'keep-alive' } : {}) });
        const crlf = openai && this.faults.sseCrlf;
        const frame = (text: string) => (crlf ? text.replace(/\n/g, '\r\n') : text);
        if (openai && this.faults.bigEventBytes !== undefined) {
          // one huge event, written in 64 KiB pieces
          const big = `data: {"pad":"${'x'.repeat(this.faults.bigEventBytes)}"}\n\n`;
          for (let at = 0; at < big.length && alive(); at += 65536) {
            if (!res.write(big.slice(at, at + 65536))) await drained(res, signal);
          }
        }
        if (format.thinks) {
          for (const thought of THOUGHTS) {
            if (!res.write(frame(format.thinking(thought)))) await drained(res, signal);
            await sleep(this.tokenMs, signal);
            if (!alive()) return;
          }
        }
        if (calls) {
          res.write(frame(format.toolCallChunk()));
          res.end(frame(format.final(1, doneReason, Number(process.hrtime.bigint() - t0), promptNs, Number(process.hrtime.bigint() - evalStart), includeUsage)));
          this.stats.completed++;
          return;
        }
        for (let i = 0; i < count; i++) {
          if (i > 0) await sleep(this.tokenMs, signal);
          if (!alive()) return;
          if (this.faults.killAfterTokens !== undefined && i >= this.faults.killAfterTokens) {
            res.socket?.destroy();
            return;
          }
          if (this.faults.hangAfterTokens !== undefined && i >= this.faults.hangAfterTokens) {
            await untilClosed(res);
            return;
          }
          if (this.faults.errorAfterTokens !== undefined && i >= this.faults.errorAfterTokens) {
            res.end(`${JSON.stringify({ error: 'an error was encountered while running the model: unexpected EOF' })}\n`);
            this.stats.completed++;
            return;
          }
          const ok = res.write(this.faults.garbage ? `<html>garbage ${i}</html>\n` : frame(format.token(WORDS[i % WORDS.length]!, i === 0)));
          this.stats.tokensSent++;
          this.changed();
          // like Go's blocking write: a reader that falls behind slows the generation down
          if (!ok) await drained(res, signal);
        }
        if (!alive()) return;
        if (!this.faults.noFinalChunk && !this.faults.garbage) {
          const evalNs = Number(process.hrtime.bigint() - evalStart);
          res.write(frame(format.final(count, doneReason, Number(process.hrtime.bigint() - t0), promptNs, evalNs, includeUsage)));
        }
        res.end();
        this.stats.completed++;
      } finally {
        this.releaseSlot();
        this.changed();
      }
    });
  }
}

/** The wire format of one kind of generation, chunk by chunk (ollama-api.md §1a–1c). */
class ChunkFormat {
  private readonly id = Math.floor(Math.random() * 999);
  /** how long the model took to load for this request, ns */
  loadNs = 1_200_000;
  private readonly created = Math.floor(Date.now() / 1000);

  constructor(
    private readonly kind: GenerationKind,
    private readonly model: string,
    private readonly promptTokens: number,
  ) {}

  /** the tool the model calls instead of answering, when the request's last message names one */
  call: ToolCall | undefined;
  /** it reasons first (`think` on /api/chat, `reasoning_effort` on /v1/chat/completions) */
  thinks = false;

  /** A reasoning chunk: Ollama's `message.thinking`, or `delta.reasoning` on its OpenAI route. */
  thinking(text: string): string {
    if (this.kind === 'chat') return `${JSON.stringify({ model: this.model, created_at: now(), message: { role: 'assistant', content: '', thinking: text }, done: false })}\n`;
    return sse({ ...this.chatChunkBase(), choices: [{ index: 0, delta: { role: 'assistant', content: '', reasoning: text }, finish_reason: null }] });
  }

  /** The tool call, in one chunk (Ollama sends a call whole, never in pieces). */
  toolCallChunk(): string {
    const c = this.call!;
    if (this.kind === 'anthropic') {
      // Ollama's Messages stream for a tool call: a tool_use block, its input as one JSON delta
      return (
        event('message_start', { type: 'message_start', message: { id: `msg_${this.id}`, type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: this.promptTokens, output_tokens: 0 } } }) +
        event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: anthropicId(c), name: c.name, input: {} } }) +
        event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: JSON.stringify(c.arguments) } }) +
        event('content_block_stop', { type: 'content_block_stop', index: 0 })
      );
    }
    if (this.kind === 'chat') return `${JSON.stringify({ model: this.model, created_at: now(), message: { role: 'assistant', content: '', tool_calls: [nativeCall(c)] }, done: false })}\n`;
    return sse({ ...this.chatChunkBase(), choices: [{ index: 0, delta: { role: 'assistant', content: '', tool_calls: [{ index: 0, ...openAICall(c) }] }, finish_reason: null }] });
  }

  private chatChunkBase() {
    return { id: `chatcmpl-${this.id}`, object: 'chat.completion.chunk', created: this.created, model: this.model, system_fingerprint: 'fp_ollama' };
  }

  /** (Responses) the text so far, the next event's sequence number, and the ids */
  private text = '';
  private sequence = 0;
  private readonly responseId = `resp_${Math.floor(Math.random() * 999999)}`;
  private readonly itemId = `msg_${Math.floor(Math.random() * 999999)}`;

  /** A Responses event as Ollama writes it: a Go map, so its keys sorted, `type` and `sequence_number` added. */
  private responsesEvent(name: string, data: Json): string {
    return event(name, sortedKeys({ ...data, type: name, sequence_number: this.sequence++ }));
  }

  /** The response object of Ollama's Responses stream events (openai/responses.go, buildResponseObject). */
  private responseObject(status: string, output: unknown[], usage: Json | null): Json {
    return {
      background: false, completed_at: status === 'completed' ? this.created : null, created_at: this.created, error: null, frequency_penalty: 0, id: this.responseId,
      incomplete_details: null, instructions: null, max_output_tokens: null, max_tool_calls: null, metadata: {}, model: this.model, object: 'response', output,
      parallel_tool_calls: true, presence_penalty: 0, previous_response_id: null, prompt_cache_key: null, reasoning: null, safety_identifier: null, service_tier: 'default',
      status, store: false, temperature: 1, text: { format: { type: 'text' } }, tool_choice: 'auto', tools: [], top_logprobs: 0, top_p: 1, truncation: 'disabled', usage,
    };
  }

  private responsesMessage(status: string): Json {
    return { content: status === 'completed' ? [this.responsesPart()] : [], id: this.itemId, role: 'assistant', status, type: 'message' };
  }

  private responsesPart(): Json {
    return { annotations: [], logprobs: [], text: this.text, type: 'output_text' };
  }

  private responsesUsage(count: number): Json {
    return { input_tokens: this.promptTokens, input_tokens_details: { cached_tokens: 0 }, output_tokens: count, output_tokens_details: { reasoning_tokens: 0 }, total_tokens: this.promptTokens + count };
  }

  token(text: string, first: boolean): string {
    switch (this.kind) {
      case 'responses': {
        // Ollama's Responses stream (openai/responses.go, ResponsesStreamConverter)
        let out = '';
        if (first) {
          out += this.responsesEvent('response.created', { response: this.responseObject('in_progress', [], null) });
          out += this.responsesEvent('response.in_progress', { response: this.responseObject('in_progress', [], null) });
          out += this.responsesEvent('response.output_item.added', { item: this.responsesMessage('in_progress'), output_index: 0 });
          out += this.responsesEvent('response.content_part.added', { content_index: 0, item_id: this.itemId, output_index: 0, part: { ...this.responsesPart(), text: '' } });
        }
        this.text += text;
        return out + this.responsesEvent('response.output_text.delta', { content_index: 0, delta: text, item_id: this.itemId, logprobs: [], output_index: 0 });
      }
      case 'anthropic': {
        // Ollama's Anthropic Messages stream (middleware/anthropic.go): named events
        const delta = event('content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text } });
        if (!first) return delta;
        return (
          event('message_start', {
            type: 'message_start',
            message: { id: `msg_${this.id}`, type: 'message', role: 'assistant', model: this.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: this.promptTokens, output_tokens: 0 } },
          }) +
          event('content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }) +
          delta
        );
      }
      case 'chat':
        return `${JSON.stringify({ model: this.model, created_at: now(), message: { role: 'assistant', content: text }, done: false })}\n`;
      case 'generate':
        return `${JSON.stringify({ model: this.model, created_at: now(), response: text, done: false })}\n`;
      case 'openai-chat':
        return sse({
          id: `chatcmpl-${this.id}`,
          object: 'chat.completion.chunk',
          created: this.created,
          model: this.model,
          system_fingerprint: 'fp_ollama',
          choices: [{ index: 0, delta: first ? { role: 'assistant', content: text } : { content: text }, finish_reason: null }],
        });
      case 'openai-completion':
        return sse({
          id: `cmpl-${this.id}`,
          object: 'text_completion',
          created: this.created,
          choices: [{ text, index: 0, finish_reason: null }],
          model: this.model,
          system_fingerprint: 'fp_ollama',
        });
    }
  }

  private metrics(count: number, totalNs: number, promptNs: number, evalNs: number) {
    return {
      total_duration: totalNs,
      load_duration: this.loadNs,
      prompt_eval_count: this.promptTokens,
      prompt_eval_duration: promptNs,
      eval_count: count,
      eval_duration: Math.max(evalNs, 1),
    };
  }

  private usage(count: number) {
    return { prompt_tokens: this.promptTokens, completion_tokens: count, total_tokens: this.promptTokens + count };
  }

  final(count: number, doneReason: string, totalNs: number, promptNs: number, evalNs: number, includeUsage: boolean): string {
    switch (this.kind) {
      case 'responses':
        return (
          this.responsesEvent('response.output_text.done', { content_index: 0, item_id: this.itemId, logprobs: [], output_index: 0, text: this.text }) +
          this.responsesEvent('response.content_part.done', { content_index: 0, item_id: this.itemId, output_index: 0, part: this.responsesPart() }) +
          this.responsesEvent('response.output_item.done', { item: this.responsesMessage('completed'), output_index: 0 }) +
          this.responsesEvent('response.completed', { response: this.responseObject('completed', [this.responsesMessage('completed')], this.responsesUsage(count)) })
        );
      case 'anthropic':
        return (
          (this.call ? '' : event('content_block_stop', { type: 'content_block_stop', index: 0 })) +
          event('message_delta', { type: 'message_delta', delta: { stop_reason: this.call ? 'tool_use' : doneReason === 'length' ? 'max_tokens' : 'end_turn', stop_sequence: null }, usage: { output_tokens: count } }) +
          event('message_stop', { type: 'message_stop' })
        );
      case 'chat':
        return `${JSON.stringify({ model: this.model, created_at: now(), message: { role: 'assistant', content: '' }, done: true, done_reason: doneReason, ...this.metrics(count, totalNs, promptNs, evalNs) })}\n`;
      case 'generate':
        return `${JSON.stringify({ model: this.model, created_at: now(), response: '', done: true, done_reason: doneReason, context: [128006, 882, 128007, 271], ...this.metrics(count, totalNs, promptNs, evalNs) })}\n`;
      case 'openai-chat': {
        const base = { id: `chatcmpl-${this.id}`, object: 'chat.completion.chunk', created: this.created, model: this.model, system_fingerprint: 'fp_ollama' };
        let out = sse({ ...base, choices: [{ index: 0, delta: {}, finish_reason: this.call ? 'tool_calls' : doneReason }] });
        if (includeUsage) out += sse({ ...base, choices: [], usage: this.usage(count) });
        return `${out}data: [DONE]\n\n`;
      }
      case 'openai-completion': {
        const base = { id: `cmpl-${this.id}`, object: 'text_completion', created: this.created };
        let out = sse({ ...base, choices: [{ text: '', index: 0, finish_reason: doneReason }], model: this.model, system_fingerprint: 'fp_ollama' });
        if (includeUsage) out += sse({ ...base, choices: [], model: this.model, system_fingerprint: 'fp_ollama', usage: this.usage(count) });
        return `${out}data: [DONE]\n\n`;
      }
    }
  }

  whole(text: string, count: number, doneReason: string, totalNs: number, promptNs: number, evalNs: number): Json {
    switch (this.kind) {
      case 'responses': {
        // a Go struct (ToResponse): fields in their declared order, usage near the end
        this.text = text;
        return {
          id: this.responseId, object: 'response', created_at: this.created, completed_at: this.created, status: 'completed', incomplete_details: null, model: this.model,
          previous_response_id: null, instructions: null, output: [this.responsesMessage('completed')], error: null, tools: [], tool_choice: 'auto', truncation: 'disabled',
          parallel_tool_calls: true, text: { format: { type: 'text' } }, top_p: 1, presence_penalty: 0, frequency_penalty: 0, top_logprobs: 0, temperature: 1, reasoning: null,
          usage: this.responsesUsage(count), max_output_tokens: null, max_tool_calls: null, store: false, background: false, service_tier: 'default', metadata: {},
          safety_identifier: null, prompt_cache_key: null,
        };
      }
      case 'anthropic':
        return {
          id: `msg_${this.id}`,
          type: 'message',
          role: 'assistant',
          model: this.model,
          content: this.call ? [{ type: 'tool_use', id: anthropicId(this.call), name: this.call.name, input: this.call.arguments }] : [{ type: 'text', text }],
          stop_reason: this.call ? 'tool_use' : doneReason === 'length' ? 'max_tokens' : 'end_turn',
          stop_sequence: null,
          usage: { input_tokens: this.promptTokens, output_tokens: count },
        };
      case 'chat': {
        const message = {
          role: 'assistant',
          content: this.call ? '' : text,
          ...(this.thinks ? { thinking: THOUGHTS.join('') } : {}),
          ...(this.call ? { tool_calls: [nativeCall(this.call)] } : {}),
        };
        return { model: this.model, created_at: now(), message, done: true, done_reason: doneReason, ...this.metrics(this.call ? 1 : count, totalNs, promptNs, evalNs) };
      }
      case 'generate':
        return { model: this.model, created_at: now(), response: text, done: true, done_reason: doneReason, context: [128006, 882, 128007, 271], ...this.metrics(count, totalNs, promptNs, evalNs) };
      case 'openai-chat':
        return {
          id: `chatcmpl-${this.id}`,
          object: 'chat.completion',
          created: this.created,
          model: this.model,
          system_fingerprint: 'fp_ollama',
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: this.call ? '' : text,
                ...(this.thinks ? { reasoning: THOUGHTS.join('') } : {}),
                ...(this.call ? { tool_calls: [openAICall(this.call)] } : {}),
              },
              finish_reason: this.call ? 'tool_calls' : doneReason,
            },
          ],
          usage: this.usage(this.call ? 1 : count),
        };
      case 'openai-completion':
        return {
          id: `cmpl-${this.id}`,
          object: 'text_completion',
          created: this.created,
          model: this.model,
          system_fingerprint: 'fp_ollama',
          choices: [{ text, index: 0, finish_reason: doneReason }],
          usage: this.usage(count),
        };
    }
  }
}

interface ToolCall {
  readonly id: string;
  readonly name: string;
  readonly arguments: Json;
}

const THOUGHTS = ['The user asks about the sky. ', 'Rayleigh scattering explains it.'];

/**
 * The tool a request's last message names (`tools[].function.name`), called with a value for
 * each of its parameters: how the simulated model decides to call a tool.
 */
function toolCallFor(body: Json | undefined): ToolCall | undefined {
  const tools = body?.['tools'];
  const tag = tagOf(body);
  if (!Array.isArray(tools) || tag === undefined) return undefined;
  for (const t of tools as Json[]) {
    // Ollama's and OpenAI's `{function: {name, parameters}}`, or Anthropic's `{name, input_schema}`
    const fn = (t?.['function'] as Json | undefined) ?? t;
    const name = fn?.['name'];
    if (typeof name !== 'string' || !tag.includes(name)) continue;
    const props = (((fn?.['parameters'] ?? fn?.['input_schema']) as Json | undefined)?.['properties'] ?? {}) as Record<string, Json>;
    const args: Json = {};
    for (const [k, v] of Object.entries(props)) args[k] = v?.['type'] === 'number' || v?.['type'] === 'integer' ? 1 : v?.['type'] === 'boolean' ? true : 'Paris';
    return { id: `call_${createHash('sha1').update(tag).digest('hex').slice(0, 8)}`, name, arguments: args };
  }
  return undefined;
}

/** Anthropic's id for a tool use (`toolu_...`). */
function anthropicId(c: ToolCall): string {
  return `toolu_${c.id.slice('call_'.length)}`;
}

/** A tool call as Ollama's native API writes it: arguments as an object. */
function nativeCall(c: ToolCall): Json {
  return { id: c.id, function: { index: 0, name: c.name, arguments: c.arguments } };
}

/** A tool call as OpenAI's API writes it: arguments as a JSON string. */
function openAICall(c: ToolCall): Json {
  return { id: c.id, type: 'function', function: { name: c.name, arguments: JSON.stringify(c.arguments) } };
}

/** An embedding as base64 of its little-endian float32s (what `encoding_format: "base64"` asks for). */
function float32Base64(v: readonly number[]): string {
  const buf = Buffer.alloc(v.length * 4);
  v.forEach((x, i) => buf.writeFloatLE(x, i * 4));
  return buf.toString('base64');
}

type GenerationKind = 'generate' | 'chat' | 'openai-chat' | 'openai-completion' | 'anthropic' | 'responses';

/** `o` with its keys (and its objects' keys) sorted, as Go's encoding/json writes a map. */
function sortedKeys(o: unknown): Json {
  if (Array.isArray(o)) return o.map(sortedKeys) as unknown as Json;
  if (o === null || typeof o !== 'object') return o as Json;
  const out: Json = {};
  for (const k of Object.keys(o).sort()) out[k] = sortedKeys((o as Json)[k]);
  return out;
}

function event(name: string, o: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(o)}\n\n`;
}

function sse(o: unknown): string {
  return `data: ${JSON.stringify(o)}\n\n`;
}

function now(): string {
  return new Date().toISOString();
}

function tagOf(body: Json | undefined): string | undefined {
  if (!body) return undefined;
  if (typeof body['prompt'] === 'string') return body['prompt'];
  const messages = body['messages'];
  if (Array.isArray(messages) && messages.length > 0) {
    const last = messages[messages.length - 1] as Json | null;
    if (last && typeof last['content'] === 'string') return last['content'];
  }
  if (typeof body['input'] === 'string') return body['input'];
  return undefined;
}

function vector(s: string, dims: number): number[] {
  const out: number[] = [];
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  for (let i = 0; i < dims; i++) {
    h = Math.imul(h ^ (h >>> 15), 2246822507);
    out.push(((h >>> 0) / 2 ** 32) * 2 - 1);
  }
  return out;
}

/** Resolves after `ms`, or at once when the client goes away (the GPU stops at once too). */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

function drained(res: ServerResponse, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off('drain', done);
      signal.removeEventListener('abort', done);
      resolve();
    };
    res.once('drain', done);
    signal.addEventListener('abort', done, { once: true });
  });
}

function untilClosed(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    if (res.destroyed) resolve();
    else res.once('close', () => resolve());
  });
}
