// The connection to the shared state of a fleet of gateway instances (Redis or Valkey): one
// client for commands and one for pub/sub, this instance's heartbeat (a key that expires when the
// instance dies), and whether the shared state is reachable now. Unreachable is not an error the
// gateway stops for: each instance goes on with its share of each backend's slots, says so once
// (log, /healthz, the ollama_gateway_shared_state_up gauge), and rejoins when Redis answers again.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from '../url-credentials.js';

export interface SharedOptions {
  /** redis://[user:password@]host:port[/db] (rediss:// for TLS) */
  readonly url: string;
  /** every key and channel starts with it (several fleets may share one Redis) */
  readonly prefix: string;
  /** how long a slot lease (and an instance's heartbeat) lives unless renewed */
  readonly leaseMs: number;
}

/** Records this instance alive and counts the instances alive; returns the count. */
const HEARTBEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return redis.call('ZCARD', KEYS[2])
`;

interface HeartbeatCommand {
  ogwHeartbeat(instanceKey: string, instances: string, leaseMs: number, id: string): Promise<number>;
}

export class SharedState {
  readonly client: Redis;
  /** this instance's name in the shared state */
  readonly instance = randomBytes(6).toString('hex');
  /** instances alive at the last heartbeat (this one included); 1 until Redis has answered once */
  instances = 1;
  private reachable = false;
  /** when `up` last changed (performance.now()) */
  changedAt = performance.now();
  /** this reachable spell came after an unreachable one (not the first connection at start) */
  rejoined = false;
  private wasDown = false;
  private readonly sub: Redis;
  private readonly timer: NodeJS.Timeout;
  private readonly upListeners: (() => void)[] = [];
  private readonly tickListeners: (() => void)[] = [];
  private readonly channels = new Map<string, (message: string) => void>();
  private everUp = false;
  private stopped = false;

  constructor(
    readonly opts: SharedOptions,
    private readonly log: Logger,
  ) {
    const common = {
      lazyConnect: true,
      // a command while Redis is away fails at once (the caller falls back), it does not wait in a queue
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      connectTimeout: 2_000,
      commandTimeout: 1_000,
      retryStrategy: (attempt: number) => Math.min(100 * attempt, 1_000),
    };
    this.client = new Redis(opts.url, common);
    this.client.defineCommand('ogwHeartbeat', { numberOfKeys: 2, lua: HEARTBEAT });
    this.sub = new Redis(opts.url, { ...common, enableOfflineQueue: true });
    this.client.on('error', () => {});
    this.sub.on('error', () => {});
    this.client.on('ready', () => void this.becameReady());
    this.client.on('close', () => this.becameUnreachable());
    this.sub.on('message', (channel: string, message: string) => this.channels.get(channel)?.(message));
    this.timer = setInterval(() => void this.tick(), Math.max(100, Math.floor(opts.leaseMs / 3)));
    this.timer.unref();
  }

  /** Connect (a Redis that is not there yet is not an error: the instance starts on its own). */
  async start(): Promise<void> {
    await Promise.all([this.client.connect().catch(() => {}), this.sub.connect().catch(() => {})]);
    if (this.client.status === 'ready') await this.becameReady();
    if (!this.reachable) {
      this.wasDown = true;
      this.log.warn({ redis: redactUrl(this.opts.url) }, "shared state: Redis unreachable at start; going on alone with each backend's slots until it answers");
    }
  }

  /** Back from an outage for less than a lease time: the others may not have re-asserted what they hold yet. */
  get settling(): boolean {
    return (!this.reachable || this.rejoined) && performance.now() - this.changedAt < this.opts.leaseMs;
  }

  /** Is the shared state reachable now? */
  get up(): boolean {
    return this.reachable;
  }

  key(name: string): string {
    return `${this.opts.prefix}${name}`;
  }

  /** Run when Redis becomes reachable (again): re-assert what this instance holds. */
  onUp(listener: () => void): void {
    this.upListeners.push(listener);
  }

  /** Run at each heartbeat while reachable (renew leases). */
  onTick(listener: () => void): void {
    this.tickListeners.push(listener);
  }

  /** Hear one channel's messages (the name without the prefix). */
  subscribe(channel: string, listener: (message: string) => void): void {
    const full = this.key(channel);
    this.channels.set(full, listener);
    void this.sub.subscribe(full).catch(() => {});
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.timer);
    if (this.reachable) await this.client.del(this.key(`instance:${this.instance}`)).catch(() => {});
    this.client.disconnect();
    this.sub.disconnect();
  }

  private async heartbeat(): Promise<void> {
    const hb = this.client as unknown as HeartbeatCommand;
    const n = Math.max(1, await hb.ogwHeartbeat(this.key(`instance:${this.instance}`), this.key('instances'), this.opts.leaseMs, this.instance));
    // just back (Redis may have restarted empty), the others have not all beaten yet: they are not gone
    this.instances = this.settling ? Math.max(this.instances, n) : n;
  }

  private async becameReady(): Promise<void> {
    try {
      await this.heartbeat();
    } catch {
      return;
    }
    if (this.reachable || this.stopped) return;
    this.reachable = true;
    this.changedAt = performance.now();
    this.rejoined = this.wasDown;
    this.log.info({ redis: redactUrl(this.opts.url), instance: this.instance, instances: this.instances }, this.everUp ? 'shared state: Redis reachable again; rejoining the fleet' : 'shared state: Redis reachable; slots and queue order are fleet-wide');
    this.everUp = true;
    for (const l of this.upListeners) l();
  }

  private becameUnreachable(): void {
    if (!this.reachable) return;
    this.reachable = false;
    this.wasDown = true;
    this.changedAt = performance.now();
    if (this.stopped) return;
    this.log.warn(
      { redis: redactUrl(this.opts.url), instances: this.instances },
      `shared state: Redis unreachable; until it answers, this instance uses its share of each backend's slots (1/${this.instances}, at least 1)`,
    );
  }

  private async tick(): Promise<void> {
    if (!this.reachable) return;
    try {
      await this.heartbeat();
    } catch {
      return;
    }
    for (const l of this.tickListeners) l();
  }
}
