// A backend's health as a small state machine (Envoy-style thresholds): K consecutive failures,
// from probes or from real traffic, take it out of rotation; M consecutive successful probes bring
// it back. Pure logic: the checker and the proxy feed it, the registry acts on transitions.

export type HealthSignal = 'probe' | 'traffic';

export interface Transition {
  readonly healthy: boolean;
  readonly reason: string;
}

export class HealthState {
  healthy = true;
  private failures = 0;
  private successes = 0;
  /** no probe has answered yet: the first one decides, so a box dead at start never gets work */
  private probed = false;
  lastError: string | undefined;
  /** when it left rotation (epoch ms), while it is out */
  downSince: number | undefined;
  /** the last few successful probes' times, ms */
  private readonly probeTimes: number[] = [];

  constructor(
    private unhealthyAfter: number,
    private healthyAfter: number,
  ) {}

  setThresholds(unhealthyAfter: number, healthyAfter: number): void {
    this.unhealthyAfter = unhealthyAfter;
    this.healthyAfter = healthyAfter;
  }

  /** Returns a transition when this success brings the backend back. */
  success(signal: HealthSignal): Transition | undefined {
    if (signal === 'probe') this.probed = true;
    this.failures = 0;
    if (this.healthy) return undefined;
    // traffic never reaches a backend out of rotation; only probes may bring it back
    if (signal !== 'probe') return undefined;
    this.successes++;
    if (this.successes < this.healthyAfter) return undefined;
    this.healthy = true;
    this.downSince = undefined;
    this.successes = 0;
    this.lastError = undefined;
    return { healthy: true, reason: `${this.healthyAfter} successful probe(s)` };
  }

  /** A successful probe took this long. */
  noteProbe(ms: number): void {
    this.probeTimes.push(ms);
    if (this.probeTimes.length > 8) this.probeTimes.shift();
  }

  /** How long its probes usually take: the median of the last few successful ones (one slow probe on a busy machine does not move it), ms. */
  get usualProbeMs(): number | undefined {
    if (this.probeTimes.length === 0) return undefined;
    const sorted = [...this.probeTimes].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)];
  }

  /**
   * Returns a transition when this failure takes the backend out. A `strong` failure (a probe
   * that timed out where probes usually take a moment: the box has hung) takes it out at once,
   * whatever the threshold.
   */
  failure(signal: HealthSignal, reason: string, strong = false): Transition | undefined {
    this.successes = 0;
    // out of rotation, only probes say why (a job cut by its going down would only echo it)
    if (this.healthy || signal === 'probe') this.lastError = reason;
    if (!this.healthy) return undefined;
    this.failures++;
    if (strong) {
      this.wentDown();
      this.failures = 0;
      if (signal === 'probe') this.probed = true;
      return { healthy: false, reason };
    }
    const first = signal === 'probe' && !this.probed;
    if (signal === 'probe') this.probed = true;
    if (first) {
      this.wentDown();
      this.failures = 0;
      return { healthy: false, reason: `first probe failed: ${reason}` };
    }
    if (this.failures < this.unhealthyAfter) return undefined;
    this.wentDown();
    this.failures = 0;
    return { healthy: false, reason: `${this.unhealthyAfter} consecutive failure(s), last (${signal}): ${reason}` };
  }

  private wentDown(): void {
    this.healthy = false;
    this.downSince = Date.now();
  }
}
