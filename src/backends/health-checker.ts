// Active health probes: `GET health.path` (Ollama's `/` costs no GPU work) on each backend's own
// probe client, one at a time per backend, every interval (with a little jitter so a fleet's
// probes do not line up), each bounded by the probe timeout, counted in the gateway's attention
// (attention-deadline.ts): a stall of the gateway's own event loop does not make a backend late.
import { attentionDeadline } from './attention-deadline.js';
import type { Registry } from './registry.js';
import { describeError } from '../errors.js';
import type { Backend } from './backend.js';

export class HealthChecker {
  private readonly timers = new Map<Backend, NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly registry: Registry) {
    registry.on((e) => {
      if (e.type === 'added') this.schedule(e.backend, 0);
      if (e.type === 'removed') this.unschedule(e.backend);
    });
  }

  /** Probe every backend now and keep probing; resolves when that first round is done. */
  start(): Promise<void> {
    const first = this.registry.all.map((b) => this.probeOnce(b));
    for (const b of this.registry.all) this.schedule(b, this.registry.config.health.intervalMs);
    return Promise.all(first).then(() => undefined);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private unschedule(b: Backend): void {
    const t = this.timers.get(b);
    if (t) clearTimeout(t);
    this.timers.delete(b);
  }

  private schedule(b: Backend, delayMs: number): void {
    if (this.stopped) return;
    this.unschedule(b);
    const t = setTimeout(() => {
      void this.probeOnce(b).finally(() => {
        if (this.timers.get(b) === t) {
          const interval = this.registry.config.health.intervalMs;
          this.schedule(b, interval * (0.9 + Math.random() * 0.2));
        }
      });
    }, delayMs);
    t.unref();
    this.timers.set(b, t);
  }

  /** One probe; exported for tests through `probe()` on the gateway. */
  async probeOnce(b: Backend): Promise<boolean> {
    const { timeoutMs } = this.registry.config.health;
    const path = b.healthPath ?? (b.type === 'openai' ? '/v1/models' : this.registry.config.health.path);
    const t0 = performance.now();
    const late = new AbortController();
    const deadline = attentionDeadline(timeoutMs, () => late.abort(new DOMException(`health probe got no answer in ${timeoutMs} ms`, 'TimeoutError')));
    try {
      const res = await b.probe.request({
        method: 'GET',
        path,
        headers: { 'user-agent': 'ollama-gateway-health' },
        signal: late.signal,
      });
      await res.body.dump();
      if (res.statusCode >= 200 && res.statusCode < 300) {
        b.health.noteProbe(performance.now() - t0);
        b.success('probe');
        return true;
      }
      b.failure('probe', `health probe answered ${res.statusCode}`);
      return false;
    } catch (err) {
      // a box that answers its probes in a millisecond and now says nothing for the whole probe
      // timeout has hung: out at once, and what it holds without a byte yet goes elsewhere, rather
      // than after `unhealthy_after` more timeouts (issue 10.12)
      const usual = b.health.usualProbeMs;
      const hung = isTimeout(err) && usual !== undefined && usual * HUNG_FACTOR < timeoutMs;
      const reason = hung ? `hung: its health probe got no answer in ${timeoutMs} ms, where it usually answers in ${usual.toFixed(1)} ms` : describeError(err);
      b.failure('probe', reason, hung);
      return false;
    } finally {
      deadline.clear();
    }
  }
}

/**
 * A probe that ran into its timeout where probes usually take less than this part of it is a
 * hang, not a slow answer (a 2 s timeout on a box that answers in a millisecond).
 */
const HUNG_FACTOR = 5;

function isTimeout(err: unknown): boolean {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (e.name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT' || code === 23) return true;
  }
  return false;
}
