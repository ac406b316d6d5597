// The configuration's shape as a user writes it (snake_case YAML), validated once with zod and
// turned into a frozen, camelCase GatewayConfig that the rest of the gateway reads.
import { redactUrl } from '../url-credentials.js';
import type { Wire } from '../api-flavor.js';
import { z } from 'zod';

const seconds = () => z.number({ error: `must be a number of seconds` }).min(0, `must be 0 or more`);
const positiveSeconds = () => z.number({ error: `must be a number of seconds` }).positive(`must be more than 0`);
const whole = (min: number, max: number) =>
  z
    .number({ error: `must be a whole number` })
    .int(`must be a whole number`)
    .min(min, `must be at least ${min}`)
    .max(max, `must be at most ${max}`);

const listenSchema = z.string().refine((v) => parseListen(v) !== undefined, {
  message: 'must be host:port, e.g. 127.0.0.1:8080 or [::1]:8080 or :8080',
});

const urlSchema = z.string().refine(
  (v) => {
    try {
      const u = new URL(v);
      return (u.protocol === 'http:' || u.protocol === 'https:') && u.search === '' && u.hash === '';
    } catch {
      return false;
    }
  },
  { message: 'must be an http:// or https:// URL without query or fragment, e.g. http://gpu1:11434' },
);

export const backendSchema = z.strictObject({
  url: urlSchema,
  type: z.enum(['ollama', 'openai']).default('ollama'),
  health_path: z.string().startsWith('/', 'must start with /').optional(),
  name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.:-]+$/, 'may hold letters, digits and _ . : - only').optional(),
  slots: whole(1, 65536).optional(),
});

export const keySchema = z.strictObject({
  name: z.string().min(1).max(64).regex(/^[A-Za-z0-9_.:@-]+$/, 'may hold letters, digits and _ . : @ - only'),
  sha256: z.string({ error: 'must be the key\'s SHA-256 in hex, in quotes (ollama-gateway hash-key)' }).regex(/^[0-9a-f]{64}$/, 'must be the key\'s SHA-256 in hex (ollama-gateway hash-key)'),
  models: z.array(z.string().min(1)).min(1).default(['*']),
  admin: z.boolean().default(false),
  requests_per_minute: z.number().positive('must be more than 0').optional(),
  burst: whole(1, 1_000_000).optional(),
  max_concurrent: whole(1, 1_000_000).optional(),
  weight: z.number().positive('must be more than 0').default(1),
  max_queued: whole(0, 1_000_000).optional(),
  fairness_header: z.string().regex(/^[A-Za-z0-9-]+$/, 'must be a header name').optional(),
  priority: z.enum(['interactive', 'batch']).default('interactive'),
  tokens_per_minute: whole(1, 2 ** 40).optional(),
  tokens_per_day: whole(1, 2 ** 48).optional(),
  tokens_per_month: whole(1, 2 ** 48).optional(),
});

export const fileSchema = z.strictObject({
  listen: listenSchema.default('127.0.0.1:8080'),
  backends: z.array(backendSchema).min(1, 'at least one backend is needed'),
  slots_per_backend: whole(1, 65536).default(1),
  queue: z
    .strictObject({
      size: whole(0, 1_000_000).default(100),
      max_wait_seconds: seconds().default(0),
      retry_after_seconds: whole(1, 3600).default(1),
    })
    .prefault({}),
  limits: z
    .strictObject({
      max_body_bytes: whole(1024, 2 ** 31).default(32 * 1024 * 1024),
      max_header_bytes: whole(1024, 1024 * 1024).default(16 * 1024),
      request_header_timeout_seconds: positiveSeconds().default(10),
      // client connections open at once; past it a new connection is closed at once
      max_connections: whole(1, 1_000_000).default(8192),
      // request body bytes held in memory across all requests being read; past it 503 body_memory_full
      max_buffered_body_bytes: whole(1024, 2 ** 40).default(512 * 1024 * 1024),
      // after an answer sent before a body was read (413, 401...): read and drop the rest this long, then close
      linger_seconds: seconds().default(5),
      // the most of one SSE event the gateway holds while it must see the event whole
      max_event_bytes: whole(1024, 2 ** 31).default(1024 * 1024),
    })
    .prefault({}),
  timeouts: z
    .strictObject({
      connect_seconds: positiveSeconds().default(10),
      headers_seconds: positiveSeconds().default(600),
      idle_seconds: positiveSeconds().default(300),
    })
    .prefault({}),
  health: z
    .strictObject({
      path: z.string().startsWith('/', 'must start with /').default('/'),
      interval_seconds: positiveSeconds().default(5),
      timeout_seconds: positiveSeconds().default(2),
      unhealthy_after: whole(1, 100).default(3),
      healthy_after: whole(1, 100).default(2),
      // a backend that answers a generation 503 (server busy) gets no new job for this long
      busy_backoff_seconds: seconds().default(1),
    })
    .prefault({}),
  metrics: z
    .strictObject({
      // empty: /metrics on the main listener only
      listen: z.union([z.literal(''), listenSchema]).default(''),
    })
    .prefault({}),
  keys: z.array(keySchema).default([]),
  auth: z
    .strictObject({
      // /metrics and /status without a key (scrapers inside a trusted network)
      public_metrics: z.boolean().default(false),
      public_status: z.boolean().default(false),
      // /healthz shows backend names, URLs and last errors without an admin key (with keys configured)
      public_health_details: z.boolean().default(false),
    })
    .prefault({}),
  cors: z
    .strictObject({
      // origins allowed besides Ollama's defaults, as OLLAMA_ORIGINS: exact, or with one * wildcard
      origins: z.array(z.string().min(1)).default([]),
    })
    .prefault({}),
  tracing: z
    .strictObject({
      // OTLP/HTTP traces endpoint ('' = no tracing); OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT fill it too
      otlp_endpoint: z.union([z.literal(''), z.url({ protocol: /^https?$/, error: 'expected an http(s) URL, e.g. http://collector:4318/v1/traces' })]).default(''),
      service_name: z.string().min(1).default('ollama-gateway'),
    })
    .prefault({}),
  shared: z
    .strictObject({
      // Redis or Valkey that several gateway instances share ('' = this instance alone)
      redis_url: z.union([z.literal(''), z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379' })]).default(''),
      // every key and channel starts with it: fleets that share one Redis need one each
      key_prefix: z.string().min(1).default('ogw:'),
      // a slot lease lives this long unless its holder renews it (a dead instance's slots free after it)
      lease_seconds: z.number().min(0.5).max(600).default(5),
    })
    .prefault({}),
  aliases: z.record(z.string().min(1), z.string().min(1, 'an alias needs a target model')).default({}),
  management: z
    .strictObject({
      enabled: z.boolean().default(false),
    })
    .prefault({}),
  usage: z
    .strictObject({
      // the SQLite ledger; empty: usage is kept in memory only and budgets restart at zero
      path: z.string().default(''),
      // the ledger in PostgreSQL instead, shared by several instances ('' = none)
      postgres_url: z.union([z.literal(''), z.url({ protocol: /^postgres(ql)?$/, error: 'expected a postgres:// URL, e.g. postgres://gateway@db:5432/gateway' })]).default(''),
      flush_seconds: positiveSeconds().default(1),
    })
    .prefault({}),
  routing: z
    .strictObject({
      warm_first: z.boolean().default(true),
      warm_skew_seconds: seconds().default(2),
    })
    .prefault({}),
  catalog: z
    .strictObject({
      interval_seconds: positiveSeconds().default(30),
      timeout_seconds: positiveSeconds().default(10),
    })
    .prefault({}),
  budgets: z
    .strictObject({
      // output tokens a metered job reserves when it sets no limit of its own
      output_estimate_tokens: whole(1, 2 ** 31).default(1024),
    })
    .prefault({}),
  retry: z
    .strictObject({
      max_attempts: whole(1, 10).default(3),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      drain_seconds: seconds().default(30),
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
      format: z.enum(['json', 'pretty']).default('json'),
    })
    .prefault({}),
  inspect: z
    .strictObject({
      workers: whole(0, 64).default(1),
      worker_threshold_bytes: whole(0, 2 ** 31).default(256 * 1024),
    })
    .prefault({}),
}).superRefine((cfg, ctx) => {
  const urls = new Map<string, number>();
  const names = new Map<string, number>();
  const keyNames = new Set<string>();
  if (cfg.usage.path !== '' && cfg.usage.postgres_url !== '') ctx.addIssue({ code: 'custom', path: ['usage', 'postgres_url'], message: 'the ledger is either an SQLite file (usage.path) or PostgreSQL (usage.postgres_url), not both' });
  cfg.keys.forEach((k, i) => {
    if (keyNames.has(k.name)) ctx.addIssue({ code: 'custom', path: ['keys', i, 'name'], message: `key name ${k.name} is used twice` });
    keyNames.add(k.name);
  });
  cfg.backends.forEach((b, i) => {
    const url = b.url.replace(/\/+$/, '');
    if (urls.has(url)) ctx.addIssue({ code: 'custom', path: ['backends', i, 'url'], message: `url ${redactUrl(url)} is already backend ${urls.get(url)! + 1}` });
    else urls.set(url, i);
    if (b.name !== undefined) {
      if (names.has(b.name)) ctx.addIssue({ code: 'custom', path: ['backends', i, 'name'], message: `name ${b.name} is already backend ${names.get(b.name)! + 1}` });
      else names.set(b.name, i);
    }
  });
});

export type FileConfig = z.infer<typeof fileSchema>;

export type BackendType = Wire;

export interface BackendConfig {
  readonly name: string;
  readonly url: string;
  readonly slots: number;
  /** ollama: the native API and the OpenAI-compatible one; openai (vLLM, llama.cpp, LM Studio): `/v1` only */
  readonly type: BackendType;
  /** the probe path; default `health.path` for Ollama, `/v1/models` for OpenAI-compatible servers */
  readonly healthPath: string | undefined;
}

export type Priority = 'interactive' | 'batch';

/** A key's token rate and budgets (prompt and completion tokens together); undefined: no limit. */
export interface TokenLimits {
  readonly perMinute: number | undefined;
  readonly perDay: number | undefined;
  readonly perMonth: number | undefined;
}

export interface GatewayConfig {
  readonly listen: { readonly host: string; readonly port: number };
  readonly backends: readonly BackendConfig[];
  readonly queue: { readonly size: number; readonly maxWaitMs: number; readonly retryAfterSeconds: number };
  readonly limits: {
    readonly maxBodyBytes: number;
    readonly maxHeaderBytes: number;
    readonly requestHeaderTimeoutMs: number;
    readonly maxConnections: number;
    readonly maxBufferedBodyBytes: number;
    readonly lingerMs: number;
    readonly maxEventBytes: number;
  };
  readonly timeouts: { readonly connectMs: number; readonly headersMs: number; readonly idleMs: number };
  readonly health: {
    readonly path: string;
    readonly intervalMs: number;
    readonly timeoutMs: number;
    readonly unhealthyAfter: number;
    readonly healthyAfter: number;
    readonly busyBackoffMs: number;
  };
  /** a second listener for /metrics alone (undefined: none) */
  readonly metrics: { readonly listen: { readonly host: string; readonly port: number } | undefined };
  readonly keys: readonly {
    readonly name: string;
    readonly sha256: string;
    readonly models: readonly string[];
    readonly admin: boolean;
    readonly limits: { readonly requestsPerMinute: number | undefined; readonly burst: number | undefined; readonly maxConcurrent: number | undefined };
    readonly fairness: { readonly weight: number; readonly maxQueued: number | undefined; readonly header: string | undefined; readonly priority: Priority };
    readonly tokens: TokenLimits;
  }[];
  readonly auth: { readonly publicMetrics: boolean; readonly publicStatus: boolean; readonly publicHealthDetails: boolean };
  readonly budgets: { readonly outputEstimateTokens: number };
  readonly cors: { readonly origins: readonly string[] };
  /** OpenTelemetry traces over OTLP/HTTP; off when otlpEndpoint is '' */
  readonly tracing: { readonly otlpEndpoint: string; readonly serviceName: string };
  /** several instances sharing slots and queue order through Redis; off when redisUrl is '' */
  readonly shared: { readonly redisUrl: string; readonly prefix: string; readonly leaseMs: number };
  /** client-facing name -> the model the fleet serves */
  readonly aliases: Readonly<Record<string, string>>;
  readonly management: { readonly enabled: boolean };
  /** the usage ledger: an SQLite file ('' keeps it in memory) or PostgreSQL, written every flushMs */
  readonly usage: { readonly path: string; readonly postgresUrl: string; readonly flushMs: number };
  readonly routing: { readonly warmFirst: boolean; readonly warmSkewMs: number };
  readonly catalog: { readonly intervalMs: number; readonly timeoutMs: number };
  readonly retry: { readonly maxAttempts: number };
  readonly drainMs: number;
  readonly logLevel: FileConfig['log']['level'];
  readonly logFormat: FileConfig['log']['format'];
  readonly inspect: { readonly workers: number; readonly workerThresholdBytes: number };
}

export function parseListen(value: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(value.trim());
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535) return undefined;
  const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2]!);
  return { host, port };
}

function backendName(url: string, index: number, taken: Set<string>): string {
  const u = new URL(url);
  let name = u.port ? `${u.hostname}:${u.port}` : u.hostname;
  if (taken.has(name)) name = `${name}#${index + 1}`;
  return name;
}

/** Turn a validated file-shaped object into the frozen config the gateway runs on. */
export function freezeConfig(f: FileConfig): GatewayConfig {
  const taken = new Set<string>();
  const backends = f.backends.map((b, i) => {
    const name = b.name ?? backendName(b.url, i, taken);
    taken.add(name);
    return Object.freeze({ name, url: b.url.replace(/\/+$/, ''), slots: b.slots ?? f.slots_per_backend, type: b.type, healthPath: b.health_path });
  });
  const ms = (s: number) => Math.round(s * 1000);
  return deepFreeze({
    listen: parseListen(f.listen)!,
    backends,
    queue: { size: f.queue.size, maxWaitMs: ms(f.queue.max_wait_seconds), retryAfterSeconds: f.queue.retry_after_seconds },
    limits: {
      maxBodyBytes: f.limits.max_body_bytes,
      maxHeaderBytes: f.limits.max_header_bytes,
      requestHeaderTimeoutMs: ms(f.limits.request_header_timeout_seconds),
      maxConnections: f.limits.max_connections,
      maxBufferedBodyBytes: f.limits.max_buffered_body_bytes,
      lingerMs: ms(f.limits.linger_seconds),
      maxEventBytes: f.limits.max_event_bytes,
    },
    timeouts: { connectMs: ms(f.timeouts.connect_seconds), headersMs: ms(f.timeouts.headers_seconds), idleMs: ms(f.timeouts.idle_seconds) },
    health: {
      path: f.health.path,
      intervalMs: ms(f.health.interval_seconds),
      timeoutMs: ms(f.health.timeout_seconds),
      unhealthyAfter: f.health.unhealthy_after,
      healthyAfter: f.health.healthy_after,
      busyBackoffMs: ms(f.health.busy_backoff_seconds),
    },
    metrics: { listen: f.metrics.listen === '' ? undefined : parseListen(f.metrics.listen) },
    keys: f.keys.map((k) => ({
      name: k.name,
      sha256: k.sha256,
      models: [...k.models],
      admin: k.admin,
      limits: { requestsPerMinute: k.requests_per_minute, burst: k.burst, maxConcurrent: k.max_concurrent },
      fairness: { weight: k.weight, maxQueued: k.max_queued, header: k.fairness_header?.toLowerCase(), priority: k.priority },
      tokens: { perMinute: k.tokens_per_minute, perDay: k.tokens_per_day, perMonth: k.tokens_per_month },
    })),
    auth: { publicMetrics: f.auth.public_metrics, publicStatus: f.auth.public_status, publicHealthDetails: f.auth.public_health_details },
    budgets: { outputEstimateTokens: f.budgets.output_estimate_tokens },
    cors: { origins: [...f.cors.origins] },
    tracing: { otlpEndpoint: f.tracing.otlp_endpoint, serviceName: f.tracing.service_name },
    shared: { redisUrl: f.shared.redis_url, prefix: f.shared.key_prefix, leaseMs: ms(f.shared.lease_seconds) },
    aliases: { ...f.aliases },
    management: { enabled: f.management.enabled },
    usage: { path: f.usage.path, postgresUrl: f.usage.postgres_url, flushMs: ms(f.usage.flush_seconds) },
    routing: { warmFirst: f.routing.warm_first, warmSkewMs: ms(f.routing.warm_skew_seconds) },
    catalog: { intervalMs: ms(f.catalog.interval_seconds), timeoutMs: ms(f.catalog.timeout_seconds) },
    retry: { maxAttempts: f.retry.max_attempts },
    drainMs: ms(f.shutdown.drain_seconds),
    logLevel: f.log.level,
    logFormat: f.log.format,
    inspect: { workers: f.inspect.workers, workerThresholdBytes: f.inspect.worker_threshold_bytes },
  });
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === 'object' && !Object.isFrozen(o)) {
    Object.freeze(o);
    for (const v of Object.values(o)) deepFreeze(v);
  }
  return o;
}
