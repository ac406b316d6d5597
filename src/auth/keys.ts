// API keys. The config holds only SHA-256 digests; a presented key (`Authorization: Bearer`,
// which the ollama and openai clients send, or `X-Api-Key`) is hashed and compared against every
// configured digest in constant time. Logs carry the key's name, never the key.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { Priority, TokenLimits } from '../config/schema.js';
import type { KeyLimits } from './limits.js';
import { fullName } from '../models/name.js';

export interface KeyConfig {
  readonly name: string;
  /** hex SHA-256 of the key */
  readonly sha256: string;
  /** model name globs this key may use (`*` any run of characters) */
  readonly models: readonly string[];
  /** may use management routes, /metrics and /status */
  readonly admin: boolean;
  readonly limits?: KeyLimits;
  readonly fairness?: Fairness;
  readonly tokens?: TokenLimits;
}

export interface Fairness {
  /** share of the slots while several keys wait */
  readonly weight: number;
  /** jobs this key may have waiting */
  readonly maxQueued: number | undefined;
  /** a trusted header (lower case) whose value splits this key into one flow per user */
  readonly header: string | undefined;
  /** interactive jobs are served before batch jobs */
  readonly priority: Priority;
}

export interface ApiKey {
  readonly name: string;
  readonly admin: boolean;
  readonly limits: KeyLimits;
  readonly fairness: Fairness;
  readonly tokens: TokenLimits;
  /** has a token rate or budget (its streams are metered as they pass) */
  readonly metered: boolean;
  allows(model: string): boolean;
  /** names this model or alias itself in its list (not through a wildcard) */
  lists(name: string): boolean;
}

const NO_TOKEN_LIMITS: TokenLimits = { perMinute: undefined, perDay: undefined, perMonth: undefined };

export function hashKey(key: string): string {
  return createHash('sha256').update(key, 'utf8').digest('hex');
}

/** A strong random key: 32 bytes, base64url, with a prefix that says what it is. */
export function newKey(): string {
  return `ogw_${randomBytes(32).toString('base64url')}`;
}

function globToRegExp(glob: string): RegExp {
  // model names match without regard to case, as Ollama matches them
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`, 'i');
}

export function presentedKey(h: IncomingHttpHeaders): string | undefined {
  const auth = h['authorization'];
  if (typeof auth === 'string') {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(auth);
    if (m) return m[1];
  }
  const x = h['x-api-key'];
  return typeof x === 'string' && x.trim() !== '' ? x.trim() : undefined;
}

export class KeyRing {
  private readonly entries: { digest: Buffer; key: ApiKey }[];

  constructor(keys: readonly KeyConfig[]) {
    this.entries = keys.map((k) => {
      const patterns = k.models.map(globToRegExp);
      return {
        digest: Buffer.from(k.sha256, 'hex'),
        key: {
          name: k.name,
          admin: k.admin,
          limits: k.limits ?? { requestsPerMinute: undefined, burst: undefined, maxConcurrent: undefined },
          fairness: k.fairness ?? { weight: 1, maxQueued: undefined, header: undefined, priority: 'interactive' },
          tokens: k.tokens ?? NO_TOKEN_LIMITS,
          metered: k.tokens !== undefined && (k.tokens.perMinute !== undefined || k.tokens.perDay !== undefined || k.tokens.perMonth !== undefined),
          allows: (model: string) => patterns.some((p) => p.test(model)),
          lists: (name: string) => k.models.some((m) => m.toLowerCase() === name.toLowerCase()),
        },
      };
    });
  }

  /** No keys configured: the gateway is open (local use). */
  get open(): boolean {
    return this.entries.length === 0;
  }

  /** The key these headers present, if it is one of ours. Every digest is compared, in constant time. */
  identify(h: IncomingHttpHeaders): ApiKey | undefined {
    const presented = presentedKey(h);
    if (presented === undefined) return undefined;
    const digest = Buffer.from(hashKey(presented), 'hex');
    let found: ApiKey | undefined;
    for (const e of this.entries) if (timingSafeEqual(e.digest, digest) && !found) found = e.key;
    return found;
  }
}

/**
 * May this key use `model`? An alias (`alias`, standing for `model`) is judged by what it runs:
 * allowed when the key may use its target, or names the alias itself; a glob that merely matches
 * an alias's name never opens a target the key may not use.
 */
export function keyMayUse(key: ApiKey, model: string, alias?: string): boolean {
  if (key.allows(model) || key.allows(fullName(model))) return true;
  return alias !== undefined && (key.lists(alias) || key.lists(fullName(alias)));
}
