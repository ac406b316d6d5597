// The command line: serve, check-config, demo, simulate. Every failure a user can cause is one
// clear line on stderr and a non-zero exit, never a stack trace.
import { Command, CommanderError, Option } from 'commander';
import { CONFIG_ENV, ConfigError, OPTIONS, checkConfigFile, formatProblem, loadConfig, type LoadSources } from './config/load.js';
import type { GatewayConfig } from './config/schema.js';
import { redactUrl } from './url-credentials.js';
import { demoBanner, startDemo } from './demo.js';
import { Gateway, StartupError } from './gateway.js';
import { existsSync } from 'node:fs';
import { monthStartDay } from './usage/period.js';
import { parseSince, usageJson, usageTable } from './usage/report.js';
import { SqliteUsageStore } from './usage/sqlite.js';
import { createLogger } from './log/logger.js';
import { hashKey, newKey } from './auth/keys.js';
import { Simulator } from './simulator/simulator.js';
import { VERSION } from './version.js';
import { configJsonSchema } from './config/json-schema.js';
import { OpsError, drain, status, top } from './ops-client.js';

export interface CliIO {
  readonly out: (s: string) => void;
  readonly err: (s: string) => void;
  readonly env: Readonly<Record<string, string | undefined>>;
}

const defaultIO: CliIO = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
};

/**
 * Run the CLI. Resolves with an exit code for commands that finish, or undefined for the ones
 * that keep running (serve, demo, simulate) until a signal stops them.
 */
export async function main(argv: readonly string[], io: CliIO = defaultIO): Promise<number | undefined> {
  let result: number | undefined = 0;
  const program = new Command('ollama-gateway')
    .description('One safe, fair, observable endpoint in front of a fleet of Ollama and OpenAI-compatible servers.')
    .version(VERSION, '-v, --version')
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError('(run with --help for usage)');

  const serve = program
    .command('serve')
    .description('run the gateway (options also come from GATEWAY_* variables and the YAML file)')
    .option('-c, --config <file>', `YAML config file (or ${CONFIG_ENV})`);
  for (const o of OPTIONS) serve.addOption(new Option(o.flag, `${o.description} [${o.env}]`));
  serve.action(async (flags: Record<string, unknown>) => {
    result = await serveCommand(flags, io);
  });

  program
    .command('check-config')
    .description('validate a YAML config file; prints every problem with its line and column')
    .argument('<file>', 'the YAML file')
    .action((file: string) => {
      const problems = checkConfigFile(file);
      if (problems.length === 0) {
        const cfg = loadConfig({ file, env: {} });
        io.out(`${file}: ok (${cfg.backends.length} backend(s): ${cfg.backends.map((b) => `${b.name} ${redactUrl(b.url)} x${b.slots}`).join(', ')})\n`);
        result = 0;
      } else {
        for (const p of problems) io.err(`${formatProblem(p)}\n`);
        io.err(`${file}: ${problems.length} problem(s)\n`);
        result = 1;
      }
    });

  // day two, against a running gateway: the key from GATEWAY_KEY (or --key), never logged
  const target = (o: { url?: string; key?: string }) => ({ url: o.url ?? io.env['GATEWAY_URL'] ?? 'http://127.0.0.1:8080', key: o.key ?? io.env['GATEWAY_KEY'] });
  program
    .command('status')
    .description('the fleet, the queue and the keys of a running gateway (its /status.json)')
    .option('--url <url>', 'the gateway (or GATEWAY_URL; default http://127.0.0.1:8080)')
    .option('--key <key>', 'an API key (or GATEWAY_KEY): an admin key sees the fleet, any other its own usage')
    .option('--json', 'the report as JSON, for a script')
    .action(async (o: { url?: string; key?: string; json?: boolean }) => {
      io.out(await status(target(o), o.json === true));
      result = 0;
    });
  program
    .command('top')
    .description('a live view of a running gateway: backends, queue, flows and keys, redrawn in place (Ctrl-C to leave)')
    .option('--url <url>', 'the gateway (or GATEWAY_URL; default http://127.0.0.1:8080)')
    .option('--key <key>', 'an API key (or GATEWAY_KEY)')
    .option('--interval <seconds>', 'seconds between redraws', '1')
    .action(async (o: { url?: string; key?: string; interval: string }) => {
      const seconds = Number(o.interval);
      if (!(seconds >= 0.1 && seconds <= 3600)) throw new UsageError(`--interval: expected seconds from 0.1 to 3600, got '${o.interval}'`);
      const stop = new AbortController();
      // the alternate screen, as htop uses it: the terminal is as it was when top leaves
      io.out('\x1b[?1049h\x1b[?25l');
      const leave = () => {
        stop.abort();
      };
      process.once('SIGINT', leave);
      process.once('SIGTERM', leave);
      await top(target(o), seconds * 1000, io.out, stop.signal, () => process.stdout.columns ?? 100);
      io.out('\x1b[?25h\x1b[?1049l');
      result = 0;
    });
  const backends = program.command('backends').description('take a backend out of rotation for maintenance, and back (admin key)');
  for (const [verb, on] of [['drain', true], ['undrain', false]] as const) {
    backends
      .command(verb)
      .description(on ? 'it finishes what it holds and takes nothing new, until undrained (a reload keeps it)' : 'put a drained backend back in rotation')
      .argument('<name>', "the backend's name")
      .option('--url <url>', 'the gateway (or GATEWAY_URL; default http://127.0.0.1:8080)')
      .option('--key <key>', 'an admin API key (or GATEWAY_KEY)')
      .action(async (name: string, o: { url?: string; key?: string }) => {
        io.out(await drain(target(o), name, on));
        result = 0;
      });
  }

  program
    .command('schema')
    .description("print the config file's JSON Schema (the package ships it as gateway.schema.json, for editors)")
    .action(() => {
      io.out(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
      result = 0;
    });

  program
    .command('hash-key')
    .description("print an API key's SHA-256 digest, for keys[].sha256 in the config")
    .argument('[key]', 'the key (read from standard input when absent, so it stays out of shell history)')
    .action(async (key: string | undefined) => {
      const k = (key ?? (await readStdin())).trim();
      if (!k) throw new UsageError('no key given');
      io.out(`${hashKey(k)}\n`);
      result = 0;
    });

  program
    .command('new-key')
    .description('make a strong random API key; prints the key (give it to its user) and its digest (put it in the config)')
    .option('--name <name>', 'the key\'s name in the printed config snippet', 'my-app')
    .action((o: { name: string }) => {
      const k = newKey();
      io.out(`key:    ${k}\nsha256: ${hashKey(k)}\n\nkeys:\n  - name: ${o.name}\n    sha256: ${hashKey(k)}\n`);
      result = 0;
    });

  program
    .command('usage')
    .description('print the usage ledger: requests, tokens and errors per day, key and model')
    .option('-c, --config <file>', `the gateway's YAML config, for usage.path (or ${CONFIG_ENV})`)
    .option('--db <file>', 'the ledger file itself (default: usage.path from the config, or GATEWAY_USAGE_PATH)')
    .option('--postgres <url>', 'the ledger in PostgreSQL (default: usage.postgres_url from the config, or GATEWAY_USAGE_POSTGRES_URL)')
    .option('--since <when>', 'first day: YYYY-MM-DD, or Nd for the last N days (default: this month)')
    .option('--key <name>', 'only this key')
    .option('--json', 'JSON for scripts')
    .action(async (o: { config?: string; db?: string; postgres?: string; since?: string; key?: string; json?: boolean }) => {
      let path = o.db ?? io.env['GATEWAY_USAGE_PATH'];
      let postgres = o.postgres ?? (o.db === undefined ? io.env['GATEWAY_USAGE_POSTGRES_URL'] : undefined);
      const file = o.config ?? io.env[CONFIG_ENV];
      if (path === undefined && postgres === undefined && file !== undefined) {
        const cfg = loadConfig({ file, env: io.env }).usage;
        path = cfg.path;
        postgres = cfg.postgresUrl || undefined;
      }
      if (!path && !postgres) throw new UsageError('no ledger: give --db <file> or --postgres <url>, or -c <config> with usage.path or usage.postgres_url set');
      const since = o.since === undefined ? monthStartDay(Date.now()) : parseSince(o.since);
      if (since === undefined) throw new UsageError(`--since: expected YYYY-MM-DD or Nd (e.g. 7d), got '${o.since}'`);
      if (postgres) {
        let rows;
        try {
          const { queryUsage } = await import('./usage/postgres.js');
          rows = await queryUsage(postgres, { since, key: o.key });
        } catch (err) {
          throw new StartupError(`cannot read the usage ledger in PostgreSQL ${redactUrl(postgres)}: ${(err as Error).message}`, { cause: err });
        }
        io.out(o.json ? usageJson(rows) : usageTable(rows));
        result = 0;
        return;
      }
      path ??= '';
      if (!existsSync(path)) {
        io.err(`error: no usage ledger at ${path} (the gateway creates it when it starts with usage.path set)\n`);
        result = 1;
        return;
      }
      let store: SqliteUsageStore | undefined;
      try {
        store = new SqliteUsageStore(path);
        const rows = store.rows({ since, key: o.key });
        io.out(o.json ? usageJson(rows) : usageTable(rows));
      } catch (err) {
        // a damaged or unreadable file: one line that says which file and what SQLite said
        throw new StartupError(`cannot read the usage ledger ${path}: ${(err as Error).message}`, { cause: err });
      } finally {
        store?.close();
      }
      result = 0;
    });

  program
    .command('demo')
    .description('run the gateway in front of simulated Ollama servers on loopback')
    .option('--listen <host:port>', 'where the gateway listens', '127.0.0.1:8080')
    .option('--backends <n>', 'how many simulated backends', '3')
    .action(async (o: { listen: string; backends: string }) => {
      const n = Number(o.backends);
      if (!Number.isInteger(n) || n < 1 || n > 16) throw new UsageError(`--backends: expected a whole number from 1 to 16, got '${o.backends}'`);
      // a terminal's view: one readable line per event (the JSON log is serve's, for journald)
      const logger = createLogger({ level: 'info', format: 'pretty', singleLine: true, hide: ['config'] });
      const demo = await startDemo({ listen: o.listen, backends: n, logger });
      io.out(demoBanner(demo));
      onStopSignals(async () => {
        await demo.stop();
        await new Promise<void>((resolve) => logger.flush(() => resolve()));
      });
      result = undefined;
    });

  program
    .command('simulate')
    .description('run one simulated Ollama server (for trying the gateway, and for benchmarks)')
    .option('--listen <host:port>', 'where it listens', '127.0.0.1:11434')
    .option('--models <names>', 'comma list of model names', 'llama3.2:latest,qwen2.5:0.5b,nomic-embed-text:latest')
    .option('--parallel <n>', 'generations at once, like OLLAMA_NUM_PARALLEL', '1')
    .option('--ttft-ms <ms>', 'time to first token', '200')
    .option('--token-ms <ms>', 'time between tokens', '20')
    .option('--tokens <n>', 'tokens per answer', '50')
    .option('--max-loaded <n>', 'models kept loaded, like OLLAMA_MAX_LOADED_MODELS', '3')
    .option('--load-ms <ms>', 'time a cold model load takes', '0')
    .action(async (o: Record<string, string>) => {
      const num = (k: string) => {
        const v = Number(o[k]);
        if (!Number.isFinite(v) || v < 0) throw new UsageError(`--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: expected a number, got '${o[k]}'`);
        return v;
      };
      const m = /^(.*):(\d+)$/.exec(o['listen'] ?? '');
      if (!m) throw new UsageError(`--listen: expected host:port, got '${o['listen']}'`);
      const sim = await Simulator.start({
        host: m[1] || '127.0.0.1',
        port: Number(m[2]),
        models: (o['models'] ?? '').split(',').map((s) => s.trim()).filter(Boolean),
        parallel: num('parallel'),
        ttftMs: num('ttftMs'),
        tokenMs: num('tokenMs'),
        tokens: num('tokens'),
        maxLoaded: num('maxLoaded'),
        loadMs: num('loadMs'),
      });
      io.out(`simulated Ollama listening on ${sim.url}\n`);
      onStopSignals(() => sim.stop());
      result = undefined;
    });

  try {
    await program.parseAsync(argv as string[]);
    return result;
  } catch (err) {
    // help and version exit 0; every usage error (unknown option, missing argument) exits 2
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof ConfigError) {
      for (const p of err.problems) io.err(`error: ${formatProblem(p)}\n`);
      return 2;
    }
    if (err instanceof UsageError) {
      io.err(`error: ${err.message}\n`);
      return 2;
    }
    if (err instanceof StartupError || err instanceof OpsError) {
      io.err(`error: ${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') {
      io.err(`error: cannot listen: ${e.message}\n`);
      return 1;
    }
    throw err;
  }
}

class UsageError extends Error {}

async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) process.stderr.write('key: ');
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function sourcesFrom(flags: Record<string, unknown>, env: CliIO['env']): LoadSources {
  const { config, ...rest } = flags;
  return { file: typeof config === 'string' ? config : undefined, env, flags: rest };
}

async function serveCommand(flags: Record<string, unknown>, io: CliIO): Promise<number | undefined> {
  const sources = sourcesFrom(flags, io.env);
  const config: GatewayConfig = loadConfig(sources);
  const gateway = await Gateway.start({ config });
  const log = gateway.log;
  process.on('SIGHUP', () => {
    try {
      gateway.reload(loadConfig(sources));
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems.map(formatProblem) : [String(err)];
      log.error({ problems }, 'config reload rejected: keeping the running config');
    }
  });
  onStopSignals(async () => {
    await gateway.stop();
    await new Promise<void>((resolve) => log.flush(() => resolve()));
  });
  return undefined;
}

/** SIGTERM / SIGINT: stop gracefully once, exit 0; a second signal exits at once. */
function onStopSignals(stop: () => Promise<void>): void {
  let stopping = false;
  const handler = (signal: NodeJS.Signals) => {
    if (stopping) {
      process.stderr.write(`${signal} again: exiting now\n`);
      process.exit(1);
    }
    stopping = true;
    stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error while stopping: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', handler);
  process.on('SIGINT', handler);
}
