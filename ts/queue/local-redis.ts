/**
 * A private redis-server for the queue's tests and its bench (`bia bench queue`): spawned as a child
 * process on a free loopback port with its own temporary folder (append-only file on, fsync on every
 * write, no RDB snapshots), stopped — cleanly or as a crash — and restarted on the same port and folder
 * on demand. A missing redis-server is an error saying what to install (npm run setup installs it).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BiaError } from '../errors';

export interface RedisServer {
  url: string;
  port: number;
  dir: string;
  /** The running server's process (null while stopped). */
  readonly process: ChildProcess | null;
  /** Stop it: SIGTERM (a clean shutdown) or SIGKILL (a crash); resolves once it exited. */
  stop(signal?: 'SIGTERM' | 'SIGKILL'): Promise<void>;
  /** Start it again on the same port and folder (its append-only file brings the data back). */
  start(): Promise<void>;
  /** Stop it and remove its folder. */
  dispose(): Promise<void>;
}

export const REDIS_MISSING =
  'redis-server is not installed: the job queue needs a real Redis. Run `npm run setup` (it installs the Debian package redis-server) or `apt-get install -y redis-server`.';

/** The path of redis-server, or null. */
export function findRedisServer(): string | null {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

/** Start a private redis-server (BIA_IO_ERROR when it is not installed or does not start). */
export async function startLocalRedis(): Promise<RedisServer> {
  const exe = findRedisServer();
  if (!exe) throw new BiaError('BIA_IO_ERROR', REDIS_MISSING);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bia-redis-'));
  const port = await freePort();
  let child: ChildProcess | null = null;
  const start = async () => {
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no', '--loglevel', 'warning'];
    const c = spawn(exe, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let log = '';
    c.stdout!.on('data', (d: Buffer) => (log += d.toString()));
    c.stderr!.on('data', (d: Buffer) => (log += d.toString()));
    // Ready when it answers PING.
    const t0 = Date.now();
    for (;;) {
      if (c.exitCode !== null) throw new BiaError('BIA_IO_ERROR', `redis-server exited at start (code ${c.exitCode}): ${log}`);
      if (await ping(port)) return;
      if (Date.now() - t0 > 10_000) throw new BiaError('BIA_IO_ERROR', `redis-server did not answer on port ${port} within 10 s: ${log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM') => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) {
      child = null;
      return;
    }
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill(signal);
    await exited;
    child = null;
  };
  try {
    await start();
  } catch (e) {
    await stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dir,
    get process() {
      return child;
    },
    stop,
    start,
    async dispose() {
      await stop('SIGTERM');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** true when a Redis on the port answers PING with PONG. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let buf = '';
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(1000, () => done(false));
    s.on('error', () => done(false));
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      buf += d.toString();
      if (buf.includes('\r\n')) done(buf.startsWith('+PONG'));
    });
  });
}
