// The fleet's catalog as one Ollama would show it: the union of the backends' models and loaded
// models, the lowest version, and the same in OpenAI's shape. Answered by the gateway from its
// last polls, without taking a slot or waiting on any backend.
import type { Wire } from '../api-flavor.js';
import type { Backend } from '../backends/backend.js';
import type { PsEntry, TagEntry } from '../backends/catalog.js';
import { fullName, modelKey } from '../models/name.js';

/**
 * Backends whose catalog speaks for the fleet: in rotation, and polled at least once. The
 * native lists (`/api/tags`, `/api/ps`) show only Ollama backends, whose models `/api/chat` can
 * reach; `/v1/models` shows OpenAI-compatible ones too.
 */
function speaking(backends: readonly Backend[], api: Wire = 'ollama'): Backend[] {
  return backends.filter((b) => b.inRotation && b.catalog.known && b.speaks(api));
}

/** Same name on two backends with different digests: worth a log line, once. */
export type DigestConflict = (name: string, digests: string[]) => void;

/** Aliases show up as models of their own, beside their target, when the target is served. */
export function withAliases(models: TagEntry[], aliases: Readonly<Record<string, string>>, normalize: (name: string) => string = fullName): TagEntry[] {
  const out = [...models];
  for (const [alias, target] of Object.entries(aliases)) {
    const t = models.find((m) => normalize(m.name) === normalize(target));
    if (t) out.push({ ...t, name: alias, model: alias });
  }
  return out;
}

export function fleetTags(backends: readonly Backend[], onConflict?: DigestConflict, api: Wire = 'ollama'): { models: TagEntry[] } {
  const byName = new Map<string, TagEntry>();
  const digests = new Map<string, Set<string>>();
  for (const b of speaking(backends, api)) {
    for (const [name, entry] of b.catalog.models) {
      if (!byName.has(name)) byName.set(name, entry);
      if (typeof entry.digest === 'string') {
        const set = digests.get(name) ?? new Set<string>();
        set.add(entry.digest);
        digests.set(name, set);
      }
    }
  }
  if (onConflict) for (const [name, set] of digests) if (set.size > 1) onConflict(name, [...set]);
  // Ollama lists the newest first
  const models = [...byName.values()].sort((a, b) => String(b.modified_at ?? '').localeCompare(String(a.modified_at ?? '')));
  return { models };
}

export function fleetPs(backends: readonly Backend[]): { models: PsEntry[] } {
  const byName = new Map<string, PsEntry>();
  for (const b of speaking(backends)) {
    for (const [name, entry] of b.catalog.loaded) {
      const prior = byName.get(name);
      // loaded on several backends: show the one that stays longest
      if (!prior || String(entry.expires_at ?? '') > String(prior.expires_at ?? '')) byName.set(name, entry);
    }
  }
  const models = [...byName.values()].sort((a, b) => String(b.expires_at ?? '').localeCompare(String(a.expires_at ?? '')));
  return { models };
}

export interface OpenAIModel {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

function toOpenAI(m: TagEntry): OpenAIModel {
  const t = Date.parse(String(m.modified_at ?? ''));
  return { id: m.name, object: 'model', created: Number.isFinite(t) ? Math.floor(t / 1000) : 0, owned_by: 'library' };
}

/** `data` is a list, empty rather than null when there is nothing (unlike Ollama's own). */
export function fleetOpenAIModels(backends: readonly Backend[], aliases: Readonly<Record<string, string>> = {}): { object: 'list'; data: OpenAIModel[] } {
  return { object: 'list', data: withAliases(fleetTags(backends, undefined, 'openai').models, aliases).map(toOpenAI) };
}

export function fleetOpenAIModel(backends: readonly Backend[], id: string, aliases: Readonly<Record<string, string>> = {}): OpenAIModel | undefined {
  const target = Object.hasOwn(aliases, id) ? aliases[id] : undefined;
  if (target !== undefined) {
    const m = fleetOpenAIModel(backends, target);
    return m ? { ...m, id } : undefined;
  }
  for (const b of speaking(backends, 'openai')) {
    const m = b.catalog.models.get(b.type === 'ollama' ? modelKey(id) : id);
    // the id as asked, as Ollama echoes it
    if (m) return { ...toOpenAI(m), id };
  }
  return undefined;
}

function versionParts(v: string): number[] | undefined {
  const core = v.replace(/^v/, '').split('-')[0]!;
  const parts = core.split('.').map(Number);
  return parts.every((n) => Number.isInteger(n) && n >= 0) ? parts : undefined;
}

/** The lowest version among healthy backends (Open WebUI gates features on it). */
export function fleetVersion(backends: readonly Backend[]): string | undefined {
  let lowest: { text: string; parts: number[] } | undefined;
  for (const b of backends) {
    if (!b.inRotation || b.type !== 'ollama' || b.catalog.version === undefined) continue;
    const parts = versionParts(b.catalog.version);
    if (!parts) continue;
    const text = parts.join('.');
    if (!lowest) {
      lowest = { text, parts };
      continue;
    }
    for (let i = 0; i < Math.max(parts.length, lowest.parts.length); i++) {
      const d = (parts[i] ?? 0) - (lowest.parts[i] ?? 0);
      if (d < 0) lowest = { text, parts };
      if (d !== 0) break;
    }
  }
  return lowest?.text;
}
