// What each backend holds: its models (`/api/tags`), what it has loaded (`/api/ps`) and its
// version (`/api/version`), polled on an interval and whenever a backend joins or comes back.
// Until a backend's first poll answers, it is assumed to hold every model, so a slow poll can
// never turn a good request into a 404.
import type { Logger } from 'pino';
import type { Dispatcher } from 'undici';
import { fullName } from '../models/name.js';

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
  /** has a poll answered yet? */
  known = false;
  models = new Map<string, TagEntry>();
  loaded = new Map<string, PsEntry>();
  version: string | undefined;
  lastError: string | undefined;

  /** Might this backend serve `model`? (unknown catalog: yes) */
  serves(model: string | undefined): boolean {
    if (model === undefined || !this.known) return true;
    return this.models.has(fullName(model));
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
    const [tags, ps, version] = await Promise.allSettled([get<{ models?: TagEntry[] | null }>('/api/tags'), get<{ models?: PsEntry[] | null }>('/api/ps'), get<{ version?: string }>('/api/version')]);
    if (tags.status === 'fulfilled') {
      this.models = new Map((tags.value.models ?? []).filter((m) => typeof m?.name === 'string').map((m) => [fullName(m.name), m]));
      this.known = true;
      this.lastError = undefined;
    } else {
      this.lastError = String(tags.reason);
      log.debug({ backend: backendName, err: this.lastError }, 'catalog poll failed: keeping the last view');
    }
    if (ps.status === 'fulfilled') this.loaded = new Map((ps.value.models ?? []).filter((m) => typeof m?.name === 'string').map((m) => [fullName(m.name), m]));
    if (version.status === 'fulfilled' && typeof version.value.version === 'string') this.version = version.value.version;
  }
}
