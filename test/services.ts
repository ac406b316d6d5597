// Real servers for the tests that need them, on free loopback ports: Redis (Debian's
// redis-server) and PostgreSQL (Debian's postgresql). A test that cannot find one fails and
// names the package: CI installs them.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

async function waitForPort(port: number, proc?: ChildProcess): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (proc && proc.exitCode !== null) throw new Error(`redis-server exited (${proc.exitCode})`);
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

export interface PostgresServer {
  /** postgres://gw@127.0.0.1:PORT/postgres */
  readonly url: string;
  stop(): Promise<void>;
  /** start it again on the same port, with its data */
  start(): Promise<void>;
}

function postgresBin(): string {
  const root = '/usr/lib/postgresql';
  const version = existsSync(root) ? readdirSync(root).sort().at(-1) : undefined;
  const bin = version && join(root, version, 'bin');
  if (!bin || !existsSync(join(bin, 'initdb'))) throw new Error("PostgreSQL's initdb not found: install Debian's postgresql package (apt-get install -y postgresql)");
  return bin;
}

/** A PostgreSQL cluster of its own in a temporary directory (it refuses to run as root: it runs as postgres). */
export async function startPostgres(t: Teardown): Promise<PostgresServer> {
  const bin = postgresBin();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'ogw-pg-'));
  const ids = execFileSync('id', ['-u', 'postgres']).toString().trim();
  const gid = execFileSync('id', ['-g', 'postgres']).toString().trim();
  chownSync(dir, Number(ids), Number(gid));
  const asPostgres = (cmd: string, args: string[]) => execFileSync('runuser', ['-u', 'postgres', '--', join(bin, cmd), ...args], { stdio: 'ignore' });
  asPostgres('initdb', ['-D', join(dir, 'data'), '-A', 'trust', '-U', 'gw']);
  const start = async () => {
    asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-o', `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`, '-l', join(dir, 'log'), '-w', 'start']);
    await waitForPort(port);
  };
  const stop = async () => {
    try {
      asPostgres('pg_ctl', ['-D', join(dir, 'data'), '-m', 'immediate', 'stop']);
    } catch {
      // not running
    }
  };
  await start();
  t.teardown(async () => {
    await stop();
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: `postgres://gw@127.0.0.1:${port}/postgres`, stop, start };
}
