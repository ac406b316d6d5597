// The package as npm ships it: `main`, `types` and `exports` name files the build makes, and
// `npm pack` takes the build (not the bench) with it, and what it makes installs and serves.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { chat, post, startSims } from './helpers.js';

const root = new URL('..', import.meta.url).pathname;
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { main: string; types: string; exports: Record<string, { types: string; default: string }> };

t.test('main, types and exports point at files the build makes, and the package imports by its name', async (t) => {
  t.ok(existsSync(join(root, pkg.main)), pkg.main);
  t.ok(existsSync(join(root, pkg.types)), pkg.types);
  t.ok(existsSync(join(root, pkg.exports['.']!.default)));
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', "import('ollama-gateway').then((m) => console.log(typeof m.Gateway))"], { cwd: root });
  t.equal(stdout.trim(), 'function', "import 'ollama-gateway' gives the Gateway");
});

t.test('npm pack ships the build and the CLI, not the bench', async (t) => {
  const { stdout } = await promisify(execFile)('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: root, maxBuffer: 16 * 1024 * 1024 });
  const files = (JSON.parse(stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
  t.ok(files.includes('dist/src/cli.js'), 'the CLI build');
  t.ok(files.includes('bin/ollama-gateway.js'));
  t.ok(files.includes('gateway.example.yaml'));
  t.notOk(files.some((f) => f.startsWith('dist/bench/')), 'no bench');
});

t.test('npm pack, then install into an empty folder (as `npm install -g ./ollama-gateway-*.tgz` does): it imports and serves', async (t) => {
  const run = promisify(execFile);
  const dir = mkdtempSync(join(tmpdir(), 'ogw-pack-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // (the build is already there: npm test made it)
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], { cwd: root, maxBuffer: 16 * 1024 * 1024 });
  const tgz = join(dir, (JSON.parse(stdout) as { filename: string }[])[0]!.filename);
  const app = join(dir, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), '{"name":"app","private":true,"type":"module"}');
  // from npm's cache where it can (npm ci filled it); the optional SQLite ledger is left out
  await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--omit=optional', tgz], { cwd: app, maxBuffer: 16 * 1024 * 1024 });
  const installed = join(app, 'node_modules', 'ollama-gateway');
  t.ok(existsSync(join(installed, 'README.md')) && existsSync(join(installed, 'LICENSE')) && existsSync(join(installed, 'CHANGELOG.md')), 'README, LICENSE and CHANGELOG go with it');
  const { stdout: kind } = await run(process.execPath, ['--input-type=module', '-e', "import('ollama-gateway').then((m) => console.log(typeof m.Gateway))"], { cwd: app });
  t.equal(kind.trim(), 'function', "import 'ollama-gateway' from the installed package");
  // and its command serves: a simulated backend behind it, one chat through it
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 0, tokens: 2 });
  const proc = spawn(process.execPath, [join(installed, 'bin', 'ollama-gateway.js'), 'serve', '--listen', '127.0.0.1:0', '--backends', sim!.url], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => proc.kill('SIGKILL'));
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    proc.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /"listen":"([\d.]+:\d+)"/.exec(out);
      if (m) resolve(`http://${m[1]}`);
    });
    proc.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
  });
  const reply = await post(url, '/api/chat', chat('from the installed package'));
  t.equal(reply.status, 200, 'the installed gateway answers');
});
