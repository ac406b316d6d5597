// What each backend holds: its models (`/api/tags`), what it has loaded (`/api/ps`) and its
// version (`/api/version`), polled on an interval and whenever a backend joins or comes back.
// Until a backend's first poll answers, it is assumed to hold every model, so a slow poll can
// never turn a good request into a 404.
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import type { BackendType } from '../config/schema.js';
import { fullName, modelKey } from '../models/name.js';

export interface TagEntry {
  readonly name: string;
  readonly model?: string;
  readonly modified_at?: string;
  readonly digest?: string;
  readonly [field: string]: unknown;
}

export interface PsEntry {
  readonly name: string;
  readonly expires_at?: string;
  readonly [field: string]: unknown;
}

export class ModelCatalog {
  constructor(private readonly type: BackendType = 'ollama') {}

  /** Ollama's `llama3.2` is `llama3.2:latest`; an OpenAI-compatible server's ids are taken as they are. */
  private key(model: string): string {
    return this.type === 'ollama' ? modelKey(model) : model;
  }

  /** has a poll answered yet? */
  known = false;
  models = new Map<string, TagEntry>();
  loaded = new Map<string, PsEntry>();
  version: string | undefined;
  lastError: string | undefined;
  /**
   * What is loaded, most recent first, as `name|runner` keys: the last `/api/ps` plus what the
   * gateway itself sent since, trimmed to as many models as the backend was seen to hold at once
   * (it evicts the least recently used, as Ollama does).
   */
  private warm: string[] = [];
  private capacity = 1;

  static warmKey(model: string, runner: string): string {
    return `${modelKey(model)}|${runner}`;
  }

  isWarm(key: string): boolean {
    return this.warm.includes(key);
  }

  /** The gateway sent a job for `key` here: the backend is loading it, or has it loaded. */
  noteSent(key: string): void {
    const i = this.warm.indexOf(key);
    if (i === 0) return;
    if (i > 0) this.warm.splice(i, 1);
    // another runner of the same model replaces it
    const name = key.slice(0, key.indexOf('|') + 1);
    this.warm = [key, ...this.warm.filter((k) => !k.startsWith(name))].slice(0, this.capacity);
  }

  /** Is `model` (any runner) loaded here, as far as the gateway knows? */
  hasLoaded(model: string): boolean {
    const name = modelKey(model);
    return this.loaded.has(name) || this.warm.some((k) => k.startsWith(`${name}|`));
  }

  /** The gateway saw this backend unload `model` (keep_alive 0): neither warm nor in /api/ps now. */
  noteUnloaded(model: string): void {
    const name = modelKey(model);
    this.loaded.delete(name);
    this.warm = this.warm.filter((k) => !k.startsWith(`${name}|`));
  }

  /**
   * The backend answered a job for `model` (a preload, or any other): it is loaded there, in
   * /api/ps at once, not after the next poll. (The warm view already has it: the dispatcher noted
   * it when it leased the slot.)
   */
  noteLoaded(model: string): void {
    const key = modelKey(model);
    if (this.loaded.has(key)) return;
    const tag = this.models.get(this.key(model));
    const size = typeof tag?.['size'] === 'number' ? tag['size'] : 0;
    const name = tag?.name ?? fullName(model);
    const entry: PsEntry = {
      name,
      model: name,
      size,
      digest: tag?.digest ?? '',
      details: tag?.['details'] ?? {},
      expires_at: new Date(Date.now() + 300_000).toISOString(),
      size_vram: size,
    };
    this.loaded = new Map([[key, entry], ...this.loaded]);
  }

  /** Might this backend serve `model`? (unknown catalog: yes) */
  serves(model: string | undefined): boolean {
    if (model === undefined || !this.known) return true;
    return this.models.has(this.key(model));
  }

  /** Poll the backend once; keeps the last good view when a call fails. */
  async refresh(via: Dispatcher, timeoutMs: number, log: Logger, backendName: string): Promise<void> {
    const get = async <T>(path: string): Promise<T> => {
      const res = await via.request({ method: 'GET', path, headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`${path} answered ${res.statusCode}`);
      }
      return (await res.body.json()) as T;
    };
    const failed = (err: unknown) => {
      this.lastError = String(err);
      log.debug({ backend: backendName, err: this.lastError }, 'catalog poll failed: keeping the last view');
    };
    if (this.type === 'openai') {
      // vLLM, llama.cpp's server, LM Studio: the model list is all there is
      try {
        const list = await get<{ data?: { id?: unknown; created?: unknown }[] | null }>('/v1/models');
        const models = (list.data ?? []).filter((m): m is { id: string; created?: unknown } => typeof m?.id === 'string');
        this.models = new Map(
          models.map((m) => [m.id, { name: m.id, model: m.id, modified_at: typeof m.created === 'number' ? new Date(m.created * 1000).toISOString() : undefined }]),
        );
        this.known = true;
        this.lastError = undefined;
      } catch (err) {
        failed(err);
      }
      return;
    }
    const [tags, ps, version] = await Promise.allSettled([get<{ models?: TagEntry[] | null }>('/api/tags'), get<{ models?: PsEntry[] | null }>('/api/ps'), get<{ version?: string }>('/api/version')]);
    if (tags.status === 'fulfilled') {
      this.models = new Map((tags.value.models ?? []).filter((m) => typeof m?.name === 'string').map((m) => [this.key(m.name), m]));
      this.known = true;
      this.lastError = undefined;
    } else {
      failed(tags.reason);
    }
    if (ps.status === 'fulfilled') {
      this.loaded = new Map((ps.value.models ?? []).filter((m) => typeof m?.name === 'string').map((m) => [modelKey(m.name), m]));
      this.capacity = Math.max(this.capacity, this.loaded.size, 1);
      // keep the runner we last sent for a model still loaded; default options otherwise
      this.warm = [...this.loaded.keys()].map((name) => this.warm.find((k) => k.startsWith(`${name}|`)) ?? `${name}|`);
    }
    if (version.status === 'fulfilled' && typeof version.value.version === 'string') this.version = version.value.version;
  }
}
