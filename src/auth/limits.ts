// Per-key request rate (a token bucket: a burst, refilled at requests_per_minute) and a cap on
// the jobs a key has in the gateway at once (queued or running). Both answer 429 with a
// Retry-After; state is kept by key name, so a reload changes limits without resetting them.
import { GatewayError } from '../errors.js';

export interface KeyLimits {
  readonly requestsPerMinute: number | undefined;
  readonly burst: number | undefined;
  readonly maxConcurrent: number | undefined;
}

interface State {
  tokens: number;
  at: number;
  active: number;
}

/** A key's rate and concurrency as the admission stage sees them: this process's (KeyLimiter) or a fleet's (src/shared/). */
export interface Limiter {
  /** Admit one job for this key, or throw 429; resolves to the release to call when the job ends. */
  admit(name: string, limits: KeyLimits): (() => void) | Promise<() => void>;
}

/** The 429s of a key's limits, one spelling for this process's limiter and a fleet's. */
export function concurrencyLimited(name: string, active: number | string): GatewayError {
  return new GatewayError('concurrency_limited', `key '${name}' already has ${active} job(s) in the gateway, its limit`);
}

export function rateLimited(name: string, perMinute: number, waitS: number): GatewayError {
  return new GatewayError('rate_limited', `key '${name}' is over its rate of ${perMinute} requests per minute`, { retryAfterSeconds: waitS });
}

export class KeyLimiter implements Limiter {
  private readonly state = new Map<string, State>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  private of(name: string, limits: KeyLimits): State {
    let s = this.state.get(name);
    if (!s) {
      s = { tokens: limits.burst ?? limits.requestsPerMinute ?? 0, at: this.now(), active: 0 };
      this.state.set(name, s);
    }
    return s;
  }

  /** Admit one job for this key, or throw 429. Returns the release to call when the job ends. */
  admit(name: string, limits: KeyLimits): () => void {
    const s = this.of(name, limits);
    if (limits.maxConcurrent !== undefined && s.active >= limits.maxConcurrent) {
      throw concurrencyLimited(name, s.active);
    }
    if (limits.requestsPerMinute !== undefined) {
      const capacity = limits.burst ?? limits.requestsPerMinute;
      const perMs = limits.requestsPerMinute / 60_000;
      const t = this.now();
      s.tokens = Math.min(capacity, s.tokens + (t - s.at) * perMs);
      s.at = t;
      if (s.tokens < 1) {
        const waitS = Math.max(1, Math.ceil((1 - s.tokens) / perMs / 1000));
        throw rateLimited(name, limits.requestsPerMinute, waitS);
      }
      s.tokens -= 1;
    }
    s.active++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      s.active--;
    };
  }
}
