// Loading: defaults < YAML file < environment < command-line flags, validated once.
// One table (OPTIONS) drives the flags, the environment variables and where each lands in the
// file's shape, so the three ways in can never drift apart.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument, isMap, isSeq, type Node as YamlNode } from 'yaml';
import { fileSchema, freezeConfig, type GatewayConfig } from './schema.js';

export type OptionKind = 'int' | 'number' | 'string' | 'boolean' | 'backends' | 'list';

export interface OptionSpec {
  /** commander flag, e.g. `--queue-size <n>` */
  readonly flag: string;
  /** the camelCase key commander gives the parsed flag */
  readonly key: string;
  readonly env: string;
  readonly path: readonly string[];
  readonly kind: OptionKind;
  readonly description: string;
}

export const OPTIONS: readonly OptionSpec[] = [
  { flag: '--backends <urls>', key: 'backends', env: 'GATEWAY_BACKENDS', path: ['backends'], kind: 'backends', description: 'comma list of backend URLs, each optionally name=url' },
  { flag: '--listen <host:port>', key: 'listen', env: 'GATEWAY_LISTEN', path: ['listen'], kind: 'string', description: 'address to listen on (default 127.0.0.1:8080)' },
  { flag: '--slots-per-backend <n>', key: 'slotsPerBackend', env: 'GATEWAY_SLOTS_PER_BACKEND', path: ['slots_per_backend'], kind: 'int', description: 'requests in flight per backend (default 1)' },
  { flag: '--queue-size <n>', key: 'queueSize', env: 'GATEWAY_QUEUE_SIZE', path: ['queue', 'size'], kind: 'int', description: 'requests that may wait for a slot (default 100)' },
  { flag: '--max-queue-wait-seconds <s>', key: 'maxQueueWaitSeconds', env: 'GATEWAY_MAX_QUEUE_WAIT_SECONDS', path: ['queue', 'max_wait_seconds'], kind: 'number', description: 'longest wait for a slot before a 503, 0 = no limit (default 0)' },
  { flag: '--max-body-bytes <n>', key: 'maxBodyBytes', env: 'GATEWAY_MAX_BODY_BYTES', path: ['limits', 'max_body_bytes'], kind: 'int', description: 'largest request body (default 33554432)' },
  { flag: '--connect-timeout-seconds <s>', key: 'connectTimeoutSeconds', env: 'GATEWAY_CONNECT_TIMEOUT_SECONDS', path: ['timeouts', 'connect_seconds'], kind: 'number', description: 'backend connect timeout (default 10)' },
  { flag: '--headers-timeout-seconds <s>', key: 'headersTimeoutSeconds', env: 'GATEWAY_HEADERS_TIMEOUT_SECONDS', path: ['timeouts', 'headers_seconds'], kind: 'number', description: 'wait for a backend\'s response headers, model load included (default 600)' },
  { flag: '--idle-timeout-seconds <s>', key: 'idleTimeoutSeconds', env: 'GATEWAY_IDLE_TIMEOUT_SECONDS', path: ['timeouts', 'idle_seconds'], kind: 'number', description: 'longest silence inside a response (default 300)' },
  { flag: '--health-interval-seconds <s>', key: 'healthIntervalSeconds', env: 'GATEWAY_HEALTH_INTERVAL_SECONDS', path: ['health', 'interval_seconds'], kind: 'number', description: 'time between health probes (default 5)' },
  { flag: '--drain-seconds <s>', key: 'drainSeconds', env: 'GATEWAY_DRAIN_SECONDS', path: ['shutdown', 'drain_seconds'], kind: 'number', description: 'on SIGTERM, how long streams may finish (default 30)' },
  { flag: '--metrics-listen <host:port>', key: 'metricsListen', env: 'GATEWAY_METRICS_LISTEN', path: ['metrics', 'listen'], kind: 'string', description: 'also serve /metrics on this address alone (default: none)' },
  { flag: '--log-format <format>', key: 'logFormat', env: 'GATEWAY_LOG_FORMAT', path: ['log', 'format'], kind: 'string', description: 'json (default) or pretty, for a terminal' },
  { flag: '--log-level <level>', key: 'logLevel', env: 'GATEWAY_LOG_LEVEL', path: ['log', 'level'], kind: 'string', description: 'fatal, error, warn, info, debug, trace or silent (default info)' },
  { flag: '--warm-first <yes|no>', key: 'warmFirst', env: 'GATEWAY_WARM_FIRST', path: ['routing', 'warm_first'], kind: 'boolean', description: 'prefer backends that have the model loaded (default yes)' },
  { flag: '--management <yes|no>', key: 'management', env: 'GATEWAY_MANAGEMENT', path: ['management', 'enabled'], kind: 'boolean', description: 'allow pull, push, create, copy, delete and blobs (default no)' },
  { flag: '--usage-path <file>', key: 'usagePath', env: 'GATEWAY_USAGE_PATH', path: ['usage', 'path'], kind: 'string', description: 'SQLite file for the usage ledger (default: none, usage kept in memory)' },
  { flag: '--usage-postgres-url <url>', key: 'usagePostgresUrl', env: 'GATEWAY_USAGE_POSTGRES_URL', path: ['usage', 'postgres_url'], kind: 'string', description: 'PostgreSQL for the usage ledger, shared by several instances (default: none)' },
  { flag: '--cors-origins <origins>', key: 'corsOrigins', env: 'GATEWAY_CORS_ORIGINS', path: ['cors', 'origins'], kind: 'list', description: 'comma list of origins allowed besides Ollama\'s defaults, as OLLAMA_ORIGINS (default: none)' },
  { flag: '--tracing-endpoint <url>', key: 'tracingEndpoint', env: 'GATEWAY_TRACING_ENDPOINT', path: ['tracing', 'otlp_endpoint'], kind: 'string', description: "OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces (default: none, or OpenTelemetry's OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT)" },
  { flag: '--redis-url <url>', key: 'redisUrl', env: 'GATEWAY_REDIS_URL', path: ['shared', 'redis_url'], kind: 'string', description: 'Redis (or Valkey) shared by several gateway instances: slots and queue order fleet-wide (default: none, this instance alone)' },
  { flag: '--inspect-workers <n>', key: 'inspectWorkers', env: 'GATEWAY_INSPECT_WORKERS', path: ['inspect', 'workers'], kind: 'int', description: 'worker threads that parse large bodies, 0 = parse inline (default 1)' },
];

export const CONFIG_ENV = 'GATEWAY_CONFIG';

export interface ConfigProblem {
  /** where: `file.yaml:12:5`, `GATEWAY_QUEUE_SIZE`, `--queue-size`, or `config` */
  readonly where: string;
  /** dotted path in the file's shape, e.g. `backends[1].url` */
  readonly path: string;
  readonly message: string;
}

export class ConfigError extends Error {
  readonly problems: readonly ConfigProblem[];
  constructor(problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

export function formatProblem(p: ConfigProblem): string {
  return p.path ? `${p.where}: ${p.path}: ${p.message}` : `${p.where}: ${p.message}`;
}

export interface LoadSources {
  /** the YAML file, if any */
  readonly file?: string | undefined;
  /** environment variables (process.env in production; tests pass their own) */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** parsed flags keyed by OptionSpec.key, values as strings */
  readonly flags?: Readonly<Record<string, unknown>>;
}

type Raw = Record<string, unknown>;

/** Load, layer and validate. Throws ConfigError with every problem found. */
export function loadConfig(sources: LoadSources): GatewayConfig {
  const problems: ConfigProblem[] = [];
  const origin = new Map<string, string>(); // dotted top path -> env/flag label that set it
  let raw: Raw = {};
  let located: Located | undefined;

  const file = sources.file ?? sources.env?.[CONFIG_ENV];
  if (file) {
    located = readYaml(file, problems);
    raw = located?.value ?? {};
  }

  const layer = (label: string, spec: OptionSpec, text: string): void => {
    const value = parseOptionValue(spec, text);
    if (value instanceof OptionValueError) {
      problems.push({ where: label, path: spec.path.join('.'), message: value.message });
      return;
    }
    setPath(raw, spec.path, value);
    origin.set(spec.path.join('.'), label);
  };
  // OpenTelemetry's own variables, as every OTel SDK reads them: below the gateway's options
  const otel = sources.env?.['OTEL_EXPORTER_OTLP_TRACES_ENDPOINT'] || (sources.env?.['OTEL_EXPORTER_OTLP_ENDPOINT'] ? `${sources.env['OTEL_EXPORTER_OTLP_ENDPOINT'].replace(/\/+$/, '')}/v1/traces` : '');
  if (otel && getPath(raw, ['tracing', 'otlp_endpoint']) === undefined) setPath(raw, ['tracing', 'otlp_endpoint'], otel);
  const serviceName = sources.env?.['OTEL_SERVICE_NAME'];
  if (serviceName && getPath(raw, ['tracing', 'service_name']) === undefined) setPath(raw, ['tracing', 'service_name'], serviceName);
  for (const spec of OPTIONS) {
    const v = sources.env?.[spec.env];
    if (v !== undefined && v !== '') layer(spec.env, spec, v);
  }
  for (const spec of OPTIONS) {
    const v = sources.flags?.[spec.key];
    if (v !== undefined) layer(spec.flag.split(' ')[0]!, spec, String(v));
  }
  if (problems.length > 0) throw new ConfigError(problems);

  const result = fileSchema.safeParse(raw);
  if (!result.success) {
    for (const issue of result.error.issues) {
      const path = issue.path.filter((k): k is string | number => typeof k !== 'symbol');
      if (issue.code === 'unrecognized_keys') {
        for (const key of issue.keys) {
          const at = [...path, key];
          problems.push({ where: whereIs(at, origin, located, file), path: formatPath(at), message: 'unknown option (see gateway.example.yaml)' });
        }
        continue;
      }
      problems.push({ where: whereIs(path, origin, located, file), path: formatPath(path), message: friendlyMessage(issue.message, path) });
    }
    throw new ConfigError(problems);
  }
  return freezeConfig(result.data);
}

/** Used by `check-config`: every problem in one file, without environment or flags. */
export function checkConfigFile(file: string): ConfigProblem[] {
  try {
    loadConfig({ file, env: {} });
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return [...err.problems];
    throw err;
  }
}

function friendlyMessage(message: string, path: (string | number)[]): string {
  if (path.length === 1 && path[0] === 'backends' && /expected array, received undefined/.test(message)) {
    return 'no backends: list them in the file, GATEWAY_BACKENDS or --backends';
  }
  return message;
}

class OptionValueError {
  constructor(readonly message: string) {}
}

function parseOptionValue(spec: OptionSpec, text: string): unknown {
  const t = text.trim();
  switch (spec.kind) {
    case 'int': {
      if (!/^-?\d+$/.test(t)) return new OptionValueError(`expected a whole number, got '${text}'`);
      return Number(t);
    }
    case 'number': {
      const n = Number(t);
      if (t === '' || !Number.isFinite(n)) return new OptionValueError(`expected a number, got '${text}'`);
      return n;
    }
    case 'string':
      return t;
    case 'boolean': {
      const v = t.toLowerCase();
      if (['yes', 'true', '1', 'on'].includes(v)) return true;
      if (['no', 'false', '0', 'off'].includes(v)) return false;
      return new OptionValueError(`expected yes or no, got '${text}'`);
    }
    case 'list':
      return t.split(',').map((x) => x.trim()).filter((x) => x !== '');
    case 'backends': {
      const items = t.split(',').map((s) => s.trim()).filter((s) => s !== '');
      if (items.length === 0) return new OptionValueError('expected a comma list of backend URLs');
      return items.map((item) => {
        const eq = item.indexOf('=');
        // name=url, where the name has no ':' or '/' (so a URL's own '=' never splits it)
        if (eq > 0 && !/[:/]/.test(item.slice(0, eq))) return { name: item.slice(0, eq), url: item.slice(eq + 1) };
        return { url: item };
      });
    }
  }
}

function getPath(obj: Raw, path: readonly string[]): unknown {
  let cur: unknown = obj;
  for (const key of path) {
    if (typeof cur !== 'object' || cur === null || Array.isArray(cur)) return undefined;
    cur = (cur as Raw)[key];
  }
  return cur;
}

function setPath(obj: Raw, path: readonly string[], value: unknown): void {
  let cur = obj;
  for (const key of path.slice(0, -1)) {
    const next = cur[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) cur[key] = {};
    cur = cur[key] as Raw;
  }
  cur[path[path.length - 1]!] = value;
}

function formatPath(path: (string | number)[]): string {
  return path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');
}

interface Located {
  readonly value: Raw;
  readonly doc: ReturnType<typeof parseDocument>;
  readonly lines: LineCounter;
}

function readYaml(file: string, problems: ConfigProblem[]): Located | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problems.push({ where: file, path: '', message: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
    return undefined;
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const pos = lines.linePos(e.pos[0]);
      problems.push({ where: `${file}:${pos.line}:${pos.col}`, path: '', message: e.message.split('\n')[0]! });
    }
    return undefined;
  }
  const value: unknown = doc.toJS() ?? {};
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    problems.push({ where: `${file}:1:1`, path: '', message: 'the file must be a mapping of options (key: value)' });
    return undefined;
  }
  return { value: value as Raw, doc, lines };
}

function whereIs(path: (string | number)[], origin: Map<string, string>, located: Located | undefined, file: string | undefined): string {
  for (let i = path.length; i > 0; i--) {
    const label = origin.get(path.slice(0, i).join('.'));
    if (label) return label;
  }
  if (located) {
    // the deepest node that exists on the path; for an unknown key, the key itself
    for (let i = path.length; i >= 0; i--) {
      const node = located.doc.getIn(path.slice(0, i), true) as YamlNode | undefined;
      if (node && (isMap(node) || isSeq(node) || 'range' in node) && node.range) {
        const pos = located.lines.linePos(node.range[0]);
        return `${file}:${pos.line}:${pos.col}`;
      }
    }
    return `${file}:1:1`;
  }
  return 'config';
}
