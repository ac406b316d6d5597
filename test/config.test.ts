// Configuration and the command line: layering, validation with places, one-line errors, and
// the README's tables kept honest against the code.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { ConfigError, OPTIONS, checkConfigFile, loadConfig } from '../dist/src/config/load.js';
import { ERRORS } from '../dist/src/errors.js';
import { configFile } from './helpers.js';

const run = promisify(execFile);
const BIN = new URL('../bin/ollama-gateway.js', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;


async function cli(args: string[], env: Record<string, string> = {}) {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], { env: { PATH: process.env['PATH'] ?? '', ...env } });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

t.test('defaults, and the backends from a comma list', async (t) => {
  const cfg = loadConfig({ env: { GATEWAY_BACKENDS: 'http://a:11434, gpu2=http://b:11434/' } });
  t.same(cfg.listen, { host: '127.0.0.1', port: 8080 });
  t.same(cfg.backends, [
    { name: 'a:11434', url: 'http://a:11434', slots: 1, type: 'ollama', healthPath: undefined },
    { name: 'gpu2', url: 'http://b:11434', slots: 1, type: 'ollama', healthPath: undefined },
  ]);
  t.match(cfg, { queue: { size: 100, maxWaitMs: 0 }, limits: { maxBodyBytes: 32 * 1024 * 1024 }, timeouts: { headersMs: 600_000 }, drainMs: 30_000 });
  t.ok(Object.isFrozen(cfg) && Object.isFrozen(cfg.queue) && Object.isFrozen(cfg.backends[0]), 'frozen all the way down');
});

t.test('flags override the environment, which overrides the file, which overrides defaults', async (t) => {
  const file = configFile(t, 'listen: 0.0.0.0:9000\nqueue:\n  size: 5\n  max_wait_seconds: 7\nslots_per_backend: 2\nbackends:\n  - url: http://file:1\n    name: f\n    slots: 4\n  - url: http://file:2\n');
  const onlyFile = loadConfig({ file, env: {} });
  t.same(onlyFile.backends, [
    { name: 'f', url: 'http://file:1', slots: 4, type: 'ollama', healthPath: undefined },
    { name: 'file:2', url: 'http://file:2', slots: 2, type: 'ollama', healthPath: undefined },
  ]);
  t.equal(onlyFile.queue.size, 5);
  const env = { GATEWAY_QUEUE_SIZE: '50', GATEWAY_MAX_QUEUE_WAIT_SECONDS: '1.5', GATEWAY_LISTEN: '127.0.0.1:9001' };
  const withEnv = loadConfig({ file, env });
  t.equal(withEnv.queue.size, 50);
  t.equal(withEnv.queue.maxWaitMs, 1500);
  t.same(withEnv.listen, { host: '127.0.0.1', port: 9001 });
  const withFlags = loadConfig({ file, env, flags: { queueSize: '60', backends: 'http://flag:1' } });
  t.equal(withFlags.queue.size, 60);
  t.equal(withFlags.queue.maxWaitMs, 1500, 'env still wins over the file where no flag is given');
  t.same(withFlags.backends, [{ name: 'flag:1', url: 'http://flag:1', slots: 2, type: 'ollama', healthPath: undefined }]);
  const viaEnvFile = loadConfig({ env: { GATEWAY_CONFIG: file } });
  t.equal(viaEnvFile.queue.size, 5, 'GATEWAY_CONFIG names the file');
});

t.test('every problem in a file, each with its line and column', async (t) => {
  const file = configFile(t, 'listen: nope\nbackends:\n  - url: ftp://x\n    slots: 0\n  - url: http://a:1\n    nmae: x\nqueue:\n  size: abc\n');
  const problems = checkConfigFile(file);
  t.same(
    problems.map((p) => [p.where.slice(file.length), p.path]),
    [
      [':1:9', 'listen'],
      [':3:10', 'backends[0].url'],
      [':4:12', 'backends[0].slots'],
      [':6:11', 'backends[1].nmae'],
      [':8:9', 'queue.size'],
    ],
  );
  const syntax = configFile(t, 'backends: [\n  - x\n');
  t.match(checkConfigFile(syntax)[0], { where: new RegExp(`${syntax}:\\d+:\\d+`) });
  t.same(checkConfigFile(join(ROOT, 'gateway.example.yaml')), [], 'the example file is valid');
  const dup = configFile(t, 'backends:\n  - url: http://a:1\n  - url: http://a:1/\n');
  t.match(checkConfigFile(dup), [{ path: 'backends[1].url', message: /already backend 1/ }]);
});

t.test('an env or flag value that is not a number names its source', async (t) => {
  const problemsOf = (fn: () => unknown) => {
    try {
      fn();
    } catch (err) {
      if (err instanceof ConfigError) return err.problems;
      throw err;
    }
    return [];
  };
  t.match(problemsOf(() => loadConfig({ env: { GATEWAY_BACKENDS: 'http://a:1', GATEWAY_QUEUE_SIZE: 'many' } })), [{ where: 'GATEWAY_QUEUE_SIZE', message: /whole number/ }]);
  t.match(problemsOf(() => loadConfig({ env: {}, flags: { backends: 'http://a:1', slotsPerBackend: '0' } })), [{ where: '--slots-per-backend', message: /at least 1/ }]);
});

t.test('CLI: --version, --help, check-config, and one-line errors', async (t) => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  t.equal((await cli(['--version'])).stdout.trim(), pkg.version);
  const help = await cli(['serve', '--help']);
  t.equal(help.code, 0);
  for (const o of OPTIONS) t.match(help.stdout, o.flag.split(' ')[0]!, `serve --help shows ${o.flag}`);
  const ok = await cli(['check-config', join(ROOT, 'gateway.example.yaml')]);
  t.equal(ok.code, 0);
  t.match(ok.stdout, /ok \(3 backend/);
  const bad = await cli(['check-config', configFile(t, 'backends: []\nfoo: 1\n')]);
  t.equal(bad.code, 1);
  t.match(bad.stderr, /:1:11: backends: /);
  t.match(bad.stderr, /:2:6: foo: unknown option/);
  for (const [args, env, pattern] of [
    [['serve', '--queue-size', 'abc', '--backends', 'http://a:1'], {}, /^error: --queue-size: queue\.size: expected a whole number, got 'abc'\n$/],
    [['serve'], {}, /^error: config: backends: no backends/],
    [['serve', '--bogus'], {}, /^error: unknown option '--bogus'/],
    [['serve'], { GATEWAY_BACKENDS: 'http://a:1', GATEWAY_LISTEN: 'x' }, /^error: GATEWAY_LISTEN: listen: must be host:port/],
  ] as [string[], Record<string, string>, RegExp][]) {
    const r = await cli(args, env);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, pattern);
    t.notMatch(r.stderr, /\n\s+at /, 'no stack trace');
  }
});

t.test('the README error table matches the error registry', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const rows = [...readme.matchAll(/^\| `([a-z_]+)` \| (\d{3}) \| (.+) \|$/gm)].map((m) => [m[1], Number(m[2]), m[3]]);
  const registry = Object.entries(ERRORS).map(([code, spec]) => [code, spec.status, spec.description]);
  t.same(rows, registry);
});

t.test('the README option table and gateway.example.yaml cover every env var and flag', async (t) => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const example = readFileSync(join(ROOT, 'gateway.example.yaml'), 'utf8');
  for (const o of OPTIONS) {
    const flag = o.flag.split(' ')[0]!;
    t.match(readme, `| \`${o.path.join('.')}\` | \`${o.env}\` | \`${flag}\` |`, `README row for ${o.env}`);
    t.match(example, `${o.env}, ${flag}`, `example file mentions ${o.env}`);
  }
});

t.test('a reload says what it changed: backends and keys by name, other settings by section', async (t) => {
  const { reloadChanges } = await import('../dist/src/config/diff.js');
  const sha = 'a'.repeat(64);
  const before = loadConfig({ env: {}, flags: { backends: 'a=http://127.0.0.1:1,b=http://127.0.0.1:2' } });
  const prev = loadConfig({ file: configFile(t, `backends: [{url: "http://127.0.0.1:1", name: a}, {url: "http://127.0.0.1:2", name: b}]\nkeys:\n  - {name: app, sha256: "${sha}"}\n  - {name: old, sha256: "${sha}"}\n`), env: {} });
  const next = loadConfig({ file: configFile(t, `backends: [{url: "http://127.0.0.1:1", name: a, slots: 4}, {url: "http://127.0.0.1:3", name: c}]\nqueue: {size: 7}\nkeys:\n  - {name: app, sha256: "${sha}", models: ["llama3*"]}\n  - {name: new, sha256: "${sha}"}\n`), env: {} });
  t.same(reloadChanges(prev, next), {
    backends_added: ['c'],
    backends_removed: ['b'],
    backends_changed: ['a'],
    keys_added: ['new'],
    keys_removed: ['old'],
    keys_changed: ['app'],
    settings_changed: ['queue'],
  });
  t.same(reloadChanges(before, before).settings_changed, [], 'nothing changed, nothing said');
});

t.test("tracing's endpoint: the gateway's option, else OpenTelemetry's own variables; a bad URL is a problem", async (t) => {
  const base = { GATEWAY_BACKENDS: 'http://127.0.0.1:11434' };
  t.equal(loadConfig({ env: base }).tracing.otlpEndpoint, '', 'off by default');
  t.equal(loadConfig({ env: { ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318/' } }).tracing.otlpEndpoint, 'http://c:4318/v1/traces', 'the base endpoint, with the traces path');
  t.equal(loadConfig({ env: { ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://t:4318/x' } }).tracing.otlpEndpoint, 'http://t:4318/x', 'the traces endpoint first');
  t.equal(loadConfig({ env: { ...base, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://c:4318', GATEWAY_TRACING_ENDPOINT: 'http://g:4318/v1/traces' } }).tracing.otlpEndpoint, 'http://g:4318/v1/traces', "the gateway's own variable above OpenTelemetry's");
  t.equal(loadConfig({ env: { ...base, OTEL_SERVICE_NAME: 'gw-eu' } }).tracing.serviceName, 'gw-eu');
  t.throws(() => loadConfig({ env: { ...base, GATEWAY_TRACING_ENDPOINT: 'collector:4318' } }), /tracing\.otlp_endpoint.*http\(s\) URL/);
});
