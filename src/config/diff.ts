// What a reload changed, for its log line: backends and keys by name, and the other sections
// of the config that differ. An operator reading the journal after `systemctl reload` sees what
// took effect, not only that something did.
import type { GatewayConfig } from './schema.js';

export interface ReloadChanges {
  readonly backends_added: string[];
  readonly backends_removed: string[];
  readonly backends_changed: string[];
  readonly keys_added: string[];
  readonly keys_removed: string[];
  readonly keys_changed: string[];
  /** the other top-level settings that differ (queue, limits, routing, ...) */
  readonly settings_changed: string[];
}

function byName<T extends { readonly name: string }>(xs: readonly T[]): Map<string, string> {
  return new Map(xs.map((x) => [x.name, JSON.stringify(x)]));
}

function compare(prev: Map<string, string>, next: Map<string, string>): { added: string[]; removed: string[]; changed: string[] } {
  return {
    added: [...next.keys()].filter((k) => !prev.has(k)),
    removed: [...prev.keys()].filter((k) => !next.has(k)),
    changed: [...next.keys()].filter((k) => prev.has(k) && prev.get(k) !== next.get(k)),
  };
}

export function reloadChanges(prev: GatewayConfig, next: GatewayConfig): ReloadChanges {
  const b = compare(byName(prev.backends), byName(next.backends));
  // a key's digest is no secret, but it is not worth a log line either: names say enough
  const k = compare(byName(prev.keys), byName(next.keys));
  const settings = (Object.keys(next) as (keyof GatewayConfig)[]).filter((s) => s !== 'backends' && s !== 'keys' && JSON.stringify(prev[s]) !== JSON.stringify(next[s]));
  return {
    backends_added: b.added,
    backends_removed: b.removed,
    backends_changed: b.changed,
    keys_added: k.added,
    keys_removed: k.removed,
    keys_changed: k.changed,
    settings_changed: settings,
  };
}
