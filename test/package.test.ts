// The package as npm ships it: `main`, `types` and `exports` name files the build makes, and
// `npm pack` takes the build (not the bench) with it.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';

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
