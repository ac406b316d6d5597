// The composition root: builds the pieces from a config, starts them, reloads and stops them.
// Data flows one way: front -> admission -> dispatch -> forward -> relay -> accounting.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { Backend } from './backends/backend.js';
import { CatalogRoutes } from './api/catalog-routes.js';
import { CatalogPoller } from './backends/catalog-poller.js';
import { HealthChecker } from './backends/health-checker.js';
import { Registry } from './backends/registry.js';
import type { GatewayConfig } from './config/schema.js';
import { redactUrl } from './url-credentials.js';
import { reloadChanges } from './config/diff.js';
import { Dispatcher } from './dispatch/dispatcher.js';
import { GatewayError } from './errors.js';
import { Broadcast } from './cancel.js';
import type { RequestContext } from './front/context.js';
import { sendBody, sendJson } from './front/respond.js';
import { createFront } from './front/server.js';
import { Inspector } from './inspect/inspector.js';
import { createLogger } from './log/logger.js';
import { GatewayMetrics } from './metrics/metrics.js';
import { StatusHistory } from './status/history.js';
import { KeyRing, type ApiKey } from './auth/keys.js';
import { VERSION } from './version.js';
import { KeyLimiter } from './auth/limits.js';
import { TokenBudgets } from './auth/budgets.js';
import { UsageLedger } from './usage/ledger.js';
import { monthStartDay } from './usage/period.js';
import { SqliteUsageStore } from './usage/sqlite.js';
import type * as Postgres from './usage/postgres.js';
import { MemoryUsageStore, type UsageStore } from './usage/store.js';
import type { RouteKind } from './front/routes.js';
import { STATUS_PAGE } from './status/page.js';
import { modelKey } from './models/name.js';
import { clip } from './text/clip.js';
import { createServer } from 'node:http';
import { Accounting } from './accounting/accounting.js';
import { Admission } from './admission/admission.js';
import { Jobs } from './api/jobs.js';
import { Passthrough } from './api/passthrough.js';
import { Forwarder } from './forward/forward.js';
import { relayAnswer, type RelayOptions } from './relay/relay.js';
import { Tracing } from './tracing/tracing.js';
import { isAdminPath, routeLabel } from './front/routes.js';
import type * as SharedConnection from './shared/connection.js';
import type * as SharedSlots from './shared/fleet-slots.js';
import type * as SharedLimits from './shared/shared-limits.js';
import type { Budgets } from './auth/budgets.js';

/** Modules loaded only when the config asks for them: a lone gateway keeps ioredis and pg out of its memory. */
interface Optional {
  readonly redis?: { readonly connection: typeof SharedConnection; readonly slots: typeof SharedSlots; readonly limits: typeof SharedLimits };
  readonly postgres?: typeof Postgres;
}

export interface GatewayOptions {
  readonly config: GatewayConfig;
  /** defaults to a pino logger on stdout at the config's level */
  readonly logger?: Logger;
}

export interface BackendStatus {
  readonly name: string;
  readonly url: string;
  readonly healthy: boolean;
  readonly retiring: boolean;
  /** taken out by an operator: finishes what it holds, takes nothing new */
  readonly drained: boolean;
  readonly in_flight: number;
  readonly slots: number;
  readonly last_error: string | undefined;
  /** when it left rotation (ISO time), while it is out */
  readonly down_since: string | null;
  readonly models: number | null;
  readonly loaded: string[];
}

export interface HealthReport {
  readonly status: 'ok' | 'unavailable';
  readonly backends: BackendStatus[];
  readonly queue: { readonly depth: number; readonly size: number };
  readonly in_flight: number;
  /** with shared state configured: whether Redis is reachable, and how many instances share the fleet */
  readonly shared?: { readonly redis: 'up' | 'down'; readonly instance: string; readonly instances: number };
}

export class Gateway {
  readonly log: Logger;
  readonly registry: Registry;
  readonly dispatcher: Dispatcher<Backend>;
  readonly health: HealthChecker;
  readonly catalogs: CatalogPoller;
  readonly inspector: Inspector;
  readonly metrics: GatewayMetrics;
  readonly history: StatusHistory;
  readonly budgets: Budgets;
  readonly ledger: UsageLedger;
  private readonly server: Server;
  private metricsServer: Server | undefined;
  private cfg: GatewayConfig;
  private keys: KeyRing;
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private stopping: Promise<void> | undefined;
  /** fired when a stop's drain deadline passes: answers still running get their final error line */
  private readonly deadline = new Broadcast();
  private readonly startedAt = Date.now();
  /** OpenTelemetry traces, when an OTLP endpoint is configured */
  tracing: Tracing | undefined;
  /** when the running config was loaded (start or the last reload), epoch ms */
  private configLoadedAt = Date.now();
  /** the fleet's shared state, when several instances share it through Redis */
  readonly shared: SharedConnection.SharedState | undefined;
  /** the ledger in PostgreSQL, when usage.postgres_url is set */
  private readonly postgres: Postgres.PostgresUsageStore | undefined;

  private constructor(opts: GatewayOptions, optional: Optional) {
    this.cfg = opts.config;
    this.keys = new KeyRing(opts.config.keys);
    this.log = opts.logger ?? createLogger({ level: opts.config.logLevel, format: opts.config.logFormat });
    this.registry = new Registry(this.cfg, this.log);
    const s = this.cfg.shared;
    const redis = optional.redis;
    this.shared = redis && s.redisUrl ? new redis.connection.SharedState({ url: s.redisUrl, prefix: s.prefix, leaseMs: s.leaseMs }, this.log) : undefined;
    const fleetSlots = redis && this.shared ? new redis.slots.FleetSlots(this.shared, () => this.registry.all) : undefined;
    this.dispatcher = new Dispatcher<Backend>(
      () => this.registry.all,
      this.dispatchOptions(this.cfg),
      (b) => this.registry.removeIfIdle(b),
      (b, warmKey) => {
        if (warmKey !== undefined) b.catalog.noteSent(warmKey);
      },
      fleetSlots,
    );
    this.registry.on((e) => {
      if (e.type === 'down' || e.type === 'retiring' || e.type === 'removed' || e.type === 'drained') this.dispatcher.pruneStranded();
      // a backend that joins, comes back or grows takes waiting jobs at once
      if (e.type === 'added' || e.type === 'up' || e.type === 'resized' || e.type === 'resumed' || e.type === 'undrained') this.dispatcher.drain();
    });
    this.metrics = new GatewayMetrics({
      backends: () => this.registry.all.map((b) => ({ name: b.name, inFlight: b.inFlight, slots: b.slots, up: b.inRotation })),
      queueDepth: () => this.dispatcher.queueDepth,
      queueSize: () => this.dispatcher.queueSize,
      keyQueueDepth: () => this.keyQueueDepth(),
      ...(this.shared ? { sharedUp: () => this.shared!.up } : {}),
      ...(fleetSlots ? { sharedCounts: () => fleetSlots.counts } : {}),
      ...(optional.postgres ? { usageUnwritten: () => this.postgres?.pending ?? 0 } : {}),
    });
    this.history = new StatusHistory(() => ({ queueDepth: this.dispatcher.queueDepth, inFlight: this.registry.all.reduce((n, b) => n + b.inFlight, 0) }));
    this.dispatcher.on((e) => {
      if (e === 'queue_full' || e === 'key_queue_full' || e === 'queue_timeout' || e === 'no_healthy_backend') this.metrics.rejected(e);
    });
    this.registry.on((e) => {
      if (e.type === 'up' || e.type === 'down') this.metrics.transition(e.backend.name, e.type);
    });
    this.health = new HealthChecker(this.registry);
    this.catalogs = new CatalogPoller(this.registry, this.log, () => {
      // a poll may show a backend holds a model someone waits for, or holds none of theirs
      this.dispatcher.drain();
      this.dispatcher.pruneStranded();
    });
    this.postgres = optional.postgres && this.cfg.usage.postgresUrl ? new optional.postgres.PostgresUsageStore(this.cfg.usage.postgresUrl, this.log, { dropped: (n) => this.metrics.usageDropped(n) }) : undefined;
    this.ledger = new UsageLedger(
      this.postgres ?? openStore(this.cfg.usage.path),
      this.cfg.usage.flushMs,
      this.log,
    );
    // budgets go on from what this month has used so far (the ledger survives restarts)
    this.budgets = redis && this.shared ? new redis.limits.SharedBudgets(this.shared, () => this.ledger.rows({ since: monthStartDay(Date.now()) })) : new TokenBudgets();
    try {
      this.budgets.seed(this.ledger.rows({ since: monthStartDay(Date.now()) }));
    } catch (err) {
      this.ledger.close();
      throw new StartupError(`usage.path: cannot read the usage ledger ${this.cfg.usage.path}: ${(err as Error).message}`, { cause: err });
    }
    this.inspector = new Inspector(this.cfg.inspect);
    const config = () => this.cfg;
    const refreshCatalog = (b: Backend) => this.catalogs.refresh(b);
    const relay: RelayOptions = { stop: this.deadline, gapObserver: (backend, model) => this.metrics.gapObserver(backend, this.modelLabel(model)) };
    const forwarder = new Forwarder({
      dispatcher: this.dispatcher,
      config,
      refreshCatalog,
      stop: this.deadline,
      relay: (ctx, b, up) => relayAnswer(ctx, b, up, relay),
    });
    const limiter = redis && this.shared ? new redis.limits.SharedKeyLimiter(this.shared) : new KeyLimiter();
    const admission = new Admission({ limiter, budgets: this.budgets, inspector: this.inspector, config });
    const jobs = new Jobs({ registry: this.registry, dispatcher: this.dispatcher, inspector: this.inspector, admission, forwarder, config });
    const passthrough = new Passthrough({ registry: this.registry, dispatcher: this.dispatcher, inspector: this.inspector, forwarder, config, refreshCatalog });
    const accounting = new Accounting({ log: this.log, ledger: this.ledger, history: this.history, metrics: this.metrics, modelLabel: (m) => this.modelLabel(m), open: () => this.keys.open });
    const catalogRoutes = new CatalogRoutes(
      () => this.registry.all,
      () => this.cfg.aliases,
      this.log,
    );
    this.server = createFront(
      this.cfg,
      {
        dispatched: (ctx) => this.track(jobs.run(ctx)),
        passthrough: (ctx) => this.track(passthrough.run(ctx)),
        management: (ctx) => this.track(passthrough.management(ctx)),
        gateway: (ctx) => this.answerOwnRoute(ctx),
        catalog: (ctx) => catalogRoutes.answer(ctx),
        draining: () => this.stopping !== undefined,
        began: (ctx) => {
          if (this.tracing) ctx.trace = this.tracing.begin(ctx.method, routeLabel(ctx.path), ctx.req.headers);
        },
        ended: (ctx) => accounting.ended(ctx),
        authorize: (ctx, route) => this.authorize(ctx, route),
      },
      this.log,
    );
  }

  /** Build, bind the listener and start health checks. */
  static async start(opts: GatewayOptions): Promise<Gateway> {
    const cfg = opts.config;
    const optional: Optional = {
      ...(cfg.shared.redisUrl
        ? { redis: { connection: await import('./shared/connection.js'), slots: await import('./shared/fleet-slots.js'), limits: await import('./shared/shared-limits.js') } }
        : {}),
      ...(cfg.usage.postgresUrl ? { postgres: await import('./usage/postgres.js') } : {}),
    };
    const g = new Gateway(opts, optional);
    g.tracing = await Tracing.start(g.cfg.tracing, VERSION);
    await g.shared?.start();
    if (g.postgres) {
      // this month's rows (every instance's) before the first job: budgets go on from them
      await g.postgres.open().catch(() => {});
      g.budgets.seed(g.ledger.rows({ since: monthStartDay(Date.now()) }));
    }
    g.registry.apply(g.cfg);
    await new Promise<void>((resolve, reject) => {
      g.server.once('error', reject);
      g.server.listen(g.cfg.listen.port, g.cfg.listen.host, () => {
        g.server.off('error', reject);
        resolve();
      });
    });
    // the first round of probes and catalog polls tells which backends are up and what they
    // hold before the first job arrives
    await Promise.all([g.health.start(), g.catalogs.start()]);
    if (g.cfg.metrics.listen) await g.listenMetrics(g.cfg.metrics.listen);
    const a = g.address;
    g.log.info({ listen: `${a.address}:${a.port}`, config: effectiveConfig(g.cfg) }, 'gateway listening');
    if (!g.cfg.usage.path && !g.cfg.usage.postgresUrl && g.cfg.keys.some((k) => k.tokens.perDay !== undefined || k.tokens.perMonth !== undefined)) {
      g.log.warn('keys have token budgets but usage.path is not set: usage is kept in memory, and budgets start again from zero when the gateway restarts');
    }
    if (g.keys.open && !isLoopback(g.cfg.listen.host)) {
      g.log.warn(
        { listen: `${a.address}:${a.port}` },
        'NO API KEYS CONFIGURED and listening beyond loopback: anyone who can reach this address can use the whole fleet (add keys, see README "Keys")',
      );
    }
    return g;
  }

  get config(): GatewayConfig {
    return this.cfg;
  }

  get address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  get url(): string {
    const a = this.address;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address;
    return `http://${host}:${a.port}`;
  }

  /** Apply a new config without cutting anything in flight. */
  reload(next: GatewayConfig): void {
    const prev = this.cfg;
    if (next.listen.host !== prev.listen.host || next.listen.port !== prev.listen.port) {
      this.log.warn({ from: `${prev.listen.host}:${prev.listen.port}`, to: `${next.listen.host}:${next.listen.port}` }, 'listen address changes need a restart; keeping the old one');
    }
    if (next.usage.path !== prev.usage.path || next.usage.postgresUrl !== prev.usage.postgresUrl) this.log.warn('usage ledger changes (usage.path, usage.postgres_url) need a restart; keeping the old one');
    if (next.tracing.otlpEndpoint !== prev.tracing.otlpEndpoint || next.tracing.serviceName !== prev.tracing.serviceName) this.log.warn('tracing changes need a restart; keeping the old settings');
    if (JSON.stringify(next.shared) !== JSON.stringify(prev.shared)) this.log.warn('shared state changes need a restart; keeping the old settings');
    // the listener, the worker pool and the ledger are built once: their settings wait for a restart
    this.cfg = Object.freeze({
      ...next,
      listen: prev.listen,
      usage: prev.usage,
      tracing: prev.tracing,
      shared: prev.shared,
      limits: Object.freeze({ ...prev.limits, maxBodyBytes: next.limits.maxBodyBytes }),
      inspect: prev.inspect,
    });
    this.log.level = next.logLevel;
    this.configLoadedAt = Date.now();
    this.keys = new KeyRing(next.keys);
    this.dispatcher.configure(this.dispatchOptions(next));
    this.registry.apply(this.cfg);
    this.log.info({ backends: this.cfg.backends.map((b) => b.name), queue_size: next.queue.size, ...reloadChanges(prev, this.cfg) }, 'config reloaded');
  }

  /** /status.json: the health report, each backend's output tokens/s, the recent past, and each key's usage today. */
  statusReport() {
    const report = this.healthReport();
    return {
      view: 'fleet' as const,
      gateway: this.aboutGateway(),
      ...report,
      backends: report.backends.map((b) => ({ ...b, tokens_per_second: this.history.rates.get(b.name) ?? 0 })),
      history: this.history.samples,
      keys: this.keyUsageToday(),
      // who waits now: each fairness flow (a key, or a key's user) with jobs in the queue
      flows: [...this.dispatcher.waitingByFlow].map(([flow, queued]) => ({ flow, queued })).sort((a, b) => b.queued - a.queued || a.flow.localeCompare(b.flow)),
    };
  }

  /**
   * /status.json for a key that is not an admin's: its own usage today, its budgets and limits,
   * its jobs waiting, and the fleet in counts only (no backend URLs, errors or other keys).
   */
  keyStatusReport(key: ApiKey) {
    const report = this.healthReport();
    const usage = this.keyUsageToday().find((k) => k.name === key.name);
    return {
      view: 'key' as const,
      gateway: this.aboutGateway(),
      status: report.status,
      fleet: { backends: report.backends.length, up: report.backends.filter((b) => b.healthy && !b.retiring && !b.drained).length, in_flight: report.in_flight, queue: report.queue },
      key: {
        ...usage,
        name: key.name,
        queued: this.keyQueueDepth().get(key.name) ?? 0,
        limits: {
          requests_per_minute: key.limits.requestsPerMinute ?? null,
          burst: key.limits.burst ?? null,
          max_concurrent: key.limits.maxConcurrent ?? null,
          max_queued: key.fairness.maxQueued ?? null,
          tokens_per_minute: key.tokens.perMinute ?? null,
          tokens_per_day: key.tokens.perDay ?? null,
          tokens_per_month: key.tokens.perMonth ?? null,
        },
      },
    };
  }

  /** The gateway itself: version, Node, when it started and when its config was loaded. */
  private aboutGateway() {
    return {
      version: VERSION,
      node: process.version,
      started_at: new Date(this.startedAt).toISOString(),
      uptime_seconds: Math.round((Date.now() - this.startedAt) / 1000),
      config_loaded_at: new Date(this.configLoadedAt).toISOString(),
    };
  }

  /** Waiting jobs per configured key: its flow, and its users' flows (`key/user`) together. */
  private keyQueueDepth(): Map<string, number> {
    const out = new Map<string, number>(this.cfg.keys.map((k) => [k.name, 0]));
    for (const [flow, n] of this.dispatcher.waitingByFlow) {
      const slash = flow.indexOf('/');
      const key = slash === -1 ? flow : flow.slice(0, slash);
      if (out.has(key)) out.set(key, out.get(key)! + n);
    }
    return out;
  }

  /**
   * Per key (every configured key, or the open gateway as ''): today's usage (UTC), the tokens of
   * this month, and its budgets. Read from the ledger alone, so metered and unmetered keys agree.
   */
  private keyUsageToday() {
    const now = Date.now();
    const today = this.ledger.totalsByKey();
    const month = this.ledger.totalsByKey(monthStartDay(now));
    const limits = new Map(this.cfg.keys.map((k) => [k.name, k.tokens]));
    const names = this.cfg.keys.length > 0 ? [...limits.keys()] : [''];
    return names.map((name) => {
      const u = today.get(name);
      const m = month.get(name);
      return {
        name,
        requests: u?.requests ?? 0,
        prompt_tokens: u?.promptTokens ?? 0,
        completion_tokens: u?.completionTokens ?? 0,
        errors: u?.errors ?? 0,
        tokens_month: (m?.promptTokens ?? 0) + (m?.completionTokens ?? 0),
        tokens_per_day: limits.get(name)?.perDay ?? null,
        tokens_per_month: limits.get(name)?.perMonth ?? null,
      };
    });
  }

  healthReport(): HealthReport {
    const backends = this.registry.all.map((b) => ({
      name: b.name,
      url: b.displayUrl,
      healthy: b.healthy,
      retiring: b.retiring,
      drained: b.drained,
      in_flight: b.inFlight,
      slots: b.slots,
      last_error: b.health.lastError,
      down_since: b.health.downSince === undefined ? null : new Date(b.health.downSince).toISOString(),
      models: b.catalog.known ? b.catalog.models.size : null,
      // what a box out of rotation had loaded is not what it has now
      loaded: b.healthy ? [...b.catalog.loaded.keys()] : [],
    }));
    const up = this.registry.all.some((b) => b.inRotation);
    return {
      status: up ? 'ok' : 'unavailable',
      backends,
      queue: { depth: this.dispatcher.queueDepth, size: this.dispatcher.queueSize },
      in_flight: this.registry.all.reduce((n, b) => n + b.inFlight, 0),
      ...(this.shared ? { shared: { redis: this.shared.up ? ('up' as const) : ('down' as const), instance: this.shared.instance, instances: this.shared.instances } } : {}),
    };
  }

  /**
   * Stop: refuse new work, answer queued jobs 503, let streams finish up to the drain deadline,
   * then cut what is left. Safe to call twice.
   */
  stop(drainMs = this.cfg.drainMs): Promise<void> {
    this.stopping ??= this.doStop(drainMs);
    return this.stopping;
  }

  private async doStop(drainMs: number): Promise<void> {
    this.log.info({ in_flight: this.active, queued: this.dispatcher.queueDepth, drain_ms: drainMs }, 'stopping: draining');
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    this.dispatcher.close(new GatewayError('shutting_down', 'the gateway is shutting down'));
    this.health.stop();
    this.catalogs.stop();
    this.history.stop();
    let timer: NodeJS.Timeout | undefined;
    const drained = await Promise.race([
      this.whenIdle().then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), drainMs);
      }),
    ]);
    clearTimeout(timer);
    if (!drained) {
      this.log.warn({ in_flight: this.active }, 'drain deadline passed: ending the remaining requests with an error');
      // each stream ends with its API's final error line (a cut connection would leave the
      // client unsure whether the answer was whole), then what is left is cut
      this.deadline.cancel();
      await Promise.race([this.whenIdle(), new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
    }
    this.server.closeAllConnections();
    this.metricsServer?.close();
    await Promise.all([closed, this.registry.close(!drained), this.inspector.close(), this.tracing?.shutdown()]);
    await this.shared?.stop();
    await this.ledger.close();
    this.log.info('stopped');
  }

  private whenIdle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private async track(p: Promise<void>): Promise<void> {
    this.active++;
    try {
      await p;
    } finally {
      this.active--;
      if (this.active === 0) for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  private async answerOwnRoute(ctx: RequestContext): Promise<void> {
    if (ctx.path === '/metrics') {
      const { body, contentType } = await this.metrics.render();
      sendBody(ctx, 200, body, contentType);
      return;
    }
    if (ctx.path === '/status') return sendBody(ctx, 200, STATUS_PAGE, 'text/html; charset=utf-8');
    if (isAdminPath(ctx.path)) return this.answerAdmin(ctx);
    if (ctx.path === '/status.json') {
      const full = this.keys.open || this.cfg.auth.publicStatus || ctx.key?.admin === true;
      return sendJson(ctx, 200, full || !ctx.key ? this.statusReport() : this.keyStatusReport(ctx.key));
    }
    const report = this.healthReport();
    const code = report.status === 'ok' ? 200 : 503;
    // with keys, who is behind which URL and why a box failed is for admins (or when made public);
    // an orchestrator needs only the status and the counts
    if (this.keys.open || this.cfg.auth.publicHealthDetails || ctx.key?.admin === true) return sendJson(ctx, code, report);
    sendJson(ctx, code, {
      status: report.status,
      backends: { total: report.backends.length, up: report.backends.filter((b) => b.healthy && !b.retiring && !b.drained).length },
      queue: report.queue,
      in_flight: report.in_flight,
      ...(report.shared ? { shared: { redis: report.shared.redis, instances: report.shared.instances } } : {}),
    });
  }

  /**
   * The admin routes: `POST /admin/backends/NAME/drain` takes a backend out of rotation for
   * maintenance (it finishes what it holds), `.../undrain` puts it back.
   */
  private answerAdmin(ctx: RequestContext): void {
    const m = /^\/admin\/backends\/([^/]+)\/(drain|undrain)$/.exec(ctx.path);
    if (!m) throw new GatewayError('not_found', `404 page not found: ${clip(ctx.path)}`);
    if (ctx.method !== 'POST') throw new GatewayError('method_not_allowed', `${clip(ctx.method, 16)} ${clip(ctx.path)}: use POST`);
    const name = m[1]!;
    const b = this.registry.setDrained(name, m[2] === 'drain');
    if (!b) throw new GatewayError('backend_not_found', `no backend named '${clip(name, 64)}'`);
    sendJson(ctx, 200, { backend: b.name, drained: b.drained, in_flight: b.inFlight, healthy: b.healthy });
  }

  /**
   * Who may do this. Open mode (no keys): everyone. Otherwise a known key for every route but
   * /healthz; an admin key for management, and for /metrics and /status unless made public.
   */
  private authorize(ctx: RequestContext, route: RouteKind): void {
    if (this.keys.open) return;
    if (ctx.path === '/healthz') {
      // open to all; an admin key, when presented, sees the details
      ctx.key = this.keys.identify(ctx.req.headers);
      ctx.facts.key = ctx.key?.name;
      return;
    }
    const isMetrics = ctx.path === '/metrics';
    // the page itself holds no data: it asks for a key (kept by the browser for the session) and
    // reads /status.json with it
    if (ctx.path === '/status') return;
    const isStatus = ctx.path === '/status.json';
    if ((isMetrics && this.cfg.auth.publicMetrics) || (isStatus && this.cfg.auth.publicStatus)) return;
    const key = this.keys.identify(ctx.req.headers);
    if (!key) throw new GatewayError('unauthorized', 'a valid API key is required (Authorization: Bearer <key> or X-Api-Key)');
    ctx.key = key;
    ctx.facts.key = key.name;
    // (any key reads /status.json: an admin's the whole fleet, any other its own usage and limits)
    if ((route === 'management' || isMetrics || isAdminPath(ctx.path)) && !key.admin) throw new GatewayError('admin_only', `key '${key.name}' is not an admin key`);
  }

  /** A second listener that serves /metrics alone (for a scrape network apart from clients). */
  private async listenMetrics(at: { host: string; port: number }): Promise<void> {
    const server = createServer((req, res) => {
      if ((req.url ?? '').split('?')[0] !== '/metrics') {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('404 page not found');
        return;
      }
      void this.metrics.render().then(({ body, contentType }) => res.writeHead(200, { 'content-type': contentType }).end(body));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(at.port, at.host, () => resolve());
    });
    this.metricsServer = server;
  }

  get metricsAddress(): AddressInfo | undefined {
    return this.metricsServer?.address() as AddressInfo | undefined;
  }

  /** Model names as metric labels: the fleet's models and aliases; anything else is "other". */
  private modelLabel(model: string | undefined): string {
    if (model === undefined) return 'none';
    if (Object.hasOwn(this.cfg.aliases, model)) return model;
    const key = modelKey(model);
    return this.registry.all.some((b) => b.catalog.models.has(key) || b.catalog.models.has(model)) ? key : 'other';
  }

  private dispatchOptions(cfg: GatewayConfig) {
    return { queueSize: cfg.queue.size, maxWaitMs: cfg.queue.maxWaitMs, warmFirst: cfg.routing.warmFirst, warmSkewMs: cfg.routing.warmSkewMs };
  }
}

/** The gateway could not start (a file it needs cannot be opened): one line, exit 1. */
export class StartupError extends Error {}

function openStore(path: string): UsageStore {
  if (!path) return new MemoryUsageStore();
  try {
    return new SqliteUsageStore(path);
  } catch (err) {
    throw new StartupError(`usage.path: cannot open the usage ledger ${path}: ${(err as Error).message}`, { cause: err });
  }
}

/** The running config for the start-up line, with any credentials in backend URLs hidden. */
export function effectiveConfig(cfg: GatewayConfig): unknown {
  return { ...cfg, backends: cfg.backends.map((b) => ({ ...b, url: redactUrl(b.url) })) };
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host.startsWith('127.') || host === '::1';
}
