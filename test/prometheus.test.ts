// Monitoring as code, against a real Prometheus (Debian's `prometheus`, which .ci/run installs):
// promtool accepts the gateway's /metrics, and every query of the Grafana dashboard in examples/
// evaluates on what Prometheus scraped, with its $job and $instance variables, so that two scrape
// jobs of one gateway do not double the fleet's figures.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { chat, freePort, get, post, sleep, startGateway, startSims } from './helpers.js';

const PROMETHEUS = '/usr/bin/prometheus';
const PROMTOOL = '/usr/bin/promtool';

interface PromResult {
  status: string;
  error?: string;
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] };
}

async function query(prom: string, expr: string): Promise<PromResult> {
  const res = await fetch(`${prom}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await res.json()) as PromResult;
}

const dashboard = JSON.parse(readFileSync(new URL('../examples/grafana/ollama-gateway.json', import.meta.url), 'utf8')) as {
  panels: { title?: string; targets?: { expr: string }[] }[];
  templating: { list: { name: string; definition: string; allValue?: string }[] };
};
const panelQueries = dashboard.panels.flatMap((p) => (p.targets ?? []).map((x) => ({ title: p.title ?? '', expr: x.expr })));

/** A dashboard query as Grafana sends it, with the variables set (`.+`: "All"). */
function withVars(expr: string, job: string, instance: string): string {
  return expr.replaceAll('$job', job).replaceAll('$instance', instance);
}

t.test('promtool accepts /metrics, and every dashboard query evaluates in a real Prometheus', async (t) => {
  t.ok(existsSync(PROMETHEUS) && existsSync(PROMTOOL), `${PROMETHEUS} and ${PROMTOOL} are installed (Debian package: prometheus; .ci/run installs it)`);
  if (!existsSync(PROMETHEUS)) return;
  const [sim] = await startSims(t, 1, { ttftMs: 0, tokenMs: 1, tokens: 5 });
  const { url } = await startGateway(t, [sim!]);
  for (let i = 0; i < 3; i++) await post(url, '/api/chat', chat(`fill the histograms ${i}`));

  // the default series: promtool's own lint, as an operator's CI would run it
  const metrics = (await get(url, '/metrics')).text;
  t.match(metrics, /ollama_gateway_build_info\{version="[^"]+",node="v\d+/, 'the build info carries the version and Node');
  const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: metrics, encoding: 'utf8' });
  t.equal(lint.status, 0, `promtool check metrics: ${(lint.stdout + lint.stderr).trim() || 'clean'}`);

  // one gateway scraped by two jobs, as happens when two Prometheus configs overlap
  const dir = mkdtempSync(join(tmpdir(), 'ogw-prom-'));
  const port = await freePort();
  const target = new URL(url).host;
  writeFileSync(
    join(dir, 'prometheus.yml'),
    `global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gw-a\n    static_configs: [{ targets: ['${target}'] }]\n  - job_name: gw-b\n    static_configs: [{ targets: ['${target}'] }]\n`,
  );
  const proc: ChildProcess = spawn(PROMETHEUS, [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
  t.teardown(async () => {
    proc.kill('SIGKILL');
    await new Promise((r) => (proc.exitCode !== null ? r(undefined) : proc.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  });
  const prom = `http://127.0.0.1:${port}`;
  // scraped several times by both jobs, with traffic between scrapes (rates need two samples)
  const deadline = Date.now() + 30_000;
  for (;;) {
    const r = await query(prom, 'count_over_time(ollama_gateway_build_info[1m])').catch(() => undefined);
    const counts = r?.data.result.map((x) => Number(x.value[1])) ?? [];
    if (counts.length === 2 && counts.every((n) => n >= 4)) break;
    if (Date.now() > deadline) throw new Error(`Prometheus did not scrape the gateway twice over (${JSON.stringify(r?.data.result ?? 'not up')})`);
    await post(url, '/api/chat', chat('more traffic'));
    await sleep(500);
  }

  // the variables, as Grafana asks for them
  const jobs = (await (await fetch(`${prom}/api/v1/label/job/values?match[]=ollama_gateway_build_info`)).json()) as { data: string[] };
  t.same(jobs.data.sort(), ['gw-a', 'gw-b'], 'the $job variable lists both scrape jobs');
  const instances = (await (await fetch(`${prom}/api/v1/label/instance/values?match[]=${encodeURIComponent('ollama_gateway_build_info{job=~"gw-a"}')}`)).json()) as { data: string[] };
  t.same(instances.data, [target], 'the $instance variable lists the gateway');
  t.ok(dashboard.templating.list.some((v) => v.name === 'job') && dashboard.templating.list.some((v) => v.name === 'instance'), 'the dashboard has $job and $instance');

  t.ok(panelQueries.length > 25, `${panelQueries.length} queries`);
  for (const { title, expr } of panelQueries) {
    t.notOk(expr.includes('ollama_gateway') && !expr.includes('$job'), `${title}: scoped by $job (${expr})`);
    for (const [job, instance] of [['.+', '.+'], ['gw-a', target]] as const) {
      const r = await query(prom, withVars(expr, job, instance));
      t.equal(r.status, 'success', `${title} (job=${job}): ${r.error ?? 'evaluates'}`);
    }
  }
  // figures an operator reads first, right with both jobs selected
  const up = await query(prom, withVars(panelQueries.find((q) => q.title === 'Backends up')!.expr, '.+', '.+'));
  t.equal(Number(up.data.result[0]?.value[1]), 1, 'backends up: the fleet has one backend, not one per scrape job');
  const rps = await query(prom, withVars(panelQueries.find((q) => q.title === 'Requests/s')!.expr, 'gw-a', target));
  t.ok(Number(rps.data.result[0]?.value[1]) > 0, `requests/s seen (${rps.data.result[0]?.value[1]})`);
  const tokens = await query(prom, withVars(panelQueries.find((q) => q.title === 'Tokens/s by key')!.expr, 'gw-a', target));
  t.ok(tokens.data.result.some((x) => x.metric['type'] === 'output'), 'tokens by key: the open gateway\'s output tokens');
});
