// The other proxies the gateway is measured against in the same run, on the same backend: nginx
// and HAProxy as plain streaming proxies (Debian's nginx-light and haproxy; no buffering,
// keepalive upstreams), and a bare Node byte copier, the floor of what Node can do. Each runs in
// processes of its own; its CPU time and peak RSS are read from /proc. A proxy that is not
// installed is reported as missing and its column is skipped.
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export type ProxyName = 'nginx' | 'haproxy' | 'node-floor' | 'frames-floor' | 'http-floor';

export interface RunningProxy {
  readonly name: ProxyName;
  readonly url: string;
  /** the processes whose CPU and memory count (nginx: master and worker) */
  pids(): number[];
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export function which(bin: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/usr/local/sbin', '/usr/local/bin']) if (existsSync(join(dir, bin))) return join(dir, bin);
  try {
    return execFileSync('which', [bin], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Which of the proxies this machine has. */
export function available(): Record<ProxyName, boolean> {
  return { nginx: which('nginx') !== undefined, haproxy: which('haproxy') !== undefined, 'node-floor': true, 'frames-floor': true, 'http-floor': true };
}

export async function waitForPort(port: number, proc: ChildProcess, what: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(true));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(false)));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * HAProxy as the classic queueing proxy: each backend server takes `maxconn 1`, the rest wait in
 * HAProxy's own queue for as long as they must (`timeout queue`), as the gateway's waiters do.
 */
export async function startQueueingHaproxy(backendPorts: readonly number[], children: ChildProcess[], maxconn: number): Promise<RunningProxy> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ogw-bench-haproxy-queue-'));
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    `global
  maxconn ${maxconn}
  ulimit-n 20000
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 600s
  timeout server 600s
  timeout queue 600s
  option http-no-delay
  http-reuse always
frontend front
  bind 127.0.0.1:${port}
  maxconn ${maxconn}
  default_backend back
backend back
  balance roundrobin
${backendPorts.map((p, i) => `  server s${i} 127.0.0.1:${p} maxconn 1`).join('\n')}
`,
  );
  const proc = spawn(which('haproxy')!, ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(proc);
  await waitForPort(port, proc, 'haproxy');
  return { name: 'haproxy', url: `http://127.0.0.1:${port}`, pids: () => [proc.pid!], stop: () => kill(proc).finally(() => rmSync(dir, { recursive: true, force: true })) };
}

/** The node:http + undici floor as a queue in front of one-slot backends (see http-floor.ts). */
export async function startQueueingHttpFloor(backendUrls: readonly string[], children: ChildProcess[]): Promise<RunningProxy> {
  const port = await freePort();
  const prof = process.env['BENCH_CPU_PROF'];
  const proc = fork(join(here, 'http-floor.js'), [String(port), backendUrls.join(',')], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}/floor`] : [] });
  children.push(proc);
  await new Promise((resolve) => proc.once('message', resolve));
  return { name: 'http-floor', url: `http://127.0.0.1:${port}`, pids: () => [proc.pid!], stop: () => kill(proc) };
}

export async function startProxy(name: ProxyName, backendPort: number, children: ChildProcess[]): Promise<RunningProxy> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  if (name === 'node-floor' || name === 'frames-floor' || name === 'http-floor') {
    const arg = name === 'node-floor' ? String(backendPort) : `http://127.0.0.1:${backendPort}`;
    const proc = fork(join(here, `${name}.js`), [String(port), arg], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    children.push(proc);
    await new Promise((resolve) => proc.once('message', resolve));
    return { name, url, pids: () => [proc.pid!], stop: () => kill(proc) };
  }
  const dir = mkdtempSync(join(tmpdir(), `ogw-bench-${name}-`));
  if (name === 'nginx') {
    writeFileSync(
      join(dir, 'nginx.conf'),
      `daemon off;
user root;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 16384; }
http {
  access_log /dev/null;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream backend { server 127.0.0.1:${backendPort}; keepalive 1024; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
      proxy_request_buffering off;
      proxy_read_timeout 300s;
    }
  }
}
`,
    );
    const proc = spawn(which('nginx')!, ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf')], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(proc);
    await waitForPort(port, proc, 'nginx');
    return { name, url, pids: () => [proc.pid!, ...childrenOf(proc.pid!)], stop: () => kill(proc).finally(() => rmSync(dir, { recursive: true, force: true })) };
  }
  writeFileSync(
    join(dir, 'haproxy.cfg'),
    `global
  maxconn 8000
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout queue 300s
  option http-no-delay
  http-reuse always
frontend front
  bind 127.0.0.1:${port}
  default_backend back
backend back
  server s1 127.0.0.1:${backendPort} maxconn 8000
`,
  );
  const proc = spawn(which('haproxy')!, ['-f', join(dir, 'haproxy.cfg'), '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  children.push(proc);
  await waitForPort(port, proc, 'haproxy');
  return { name, url, pids: () => [proc.pid!], stop: () => kill(proc).finally(() => rmSync(dir, { recursive: true, force: true })) };
}

function kill(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    proc.once('exit', () => resolve());
    proc.kill('SIGTERM');
    setTimeout(() => proc.kill('SIGKILL'), 2000).unref();
  });
}

/** CPU seconds (user and system, all threads) the processes have used so far. */
export function cpuSeconds(pids: readonly number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // fields 14 and 15 (utime, stime), counted from after the command name
      ticks += Number(f[11]) + Number(f[12]);
    } catch {
      // gone
    }
  }
  return ticks / 100;
}

/** Peak resident memory (VmHWM) of the processes together, MiB. */
export function peakRssMiB(pids: readonly number[]): number {
  let kb = 0;
  for (const pid of pids) {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      kb += Number(m?.[1] ?? 0);
    } catch {
      // gone
    }
  }
  return kb / 1024;
}
