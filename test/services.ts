// Real servers for the tests that need them, on free loopback ports: Redis (Debian's
// redis-server). A test that cannot find one fails and names the package: CI installs it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { freePort, sleep, type Teardown } from './helpers.js';

const REDIS = ['/usr/bin/redis-server', '/usr/local/bin/redis-server'].find((p) => existsSync(p));

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** stop it (SIGKILL: it keeps nothing, as a crash would) */
  stop(): Promise<void>;
  /** start it again on the same port, empty */
  start(): Promise<void>;
}

async function waitForPort(port: number, proc: ChildProcess): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode})`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(25);
  }
  throw new Error(`redis-server did not listen on ${port}`);
}

export async function startRedis(t: Teardown): Promise<RedisServer> {
  if (!REDIS) throw new Error('redis-server not found: install Debian\'s redis-server package (apt-get install -y redis-server)');
  const port = await freePort();
  let proc: ChildProcess | undefined;
  const start = async () => {
    proc = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
    await waitForPort(port, proc);
  };
  const stop = async () => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      p.once('exit', () => resolve());
      p.kill('SIGKILL');
    });
  };
  await start();
  t.teardown(stop);
  return { url: `redis://127.0.0.1:${port}`, port, stop, start };
}
