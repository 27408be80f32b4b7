/**
 * Where the job queue lives: a Redis server, named by a URL (redis://host:port[/db], rediss:// for TLS)
 * or by ioredis connection options, and the queue's name in it. See docs/scale-out.md.
 */
import type { ConnectionOptions, Queue } from 'bullmq';
import { BiaError, invalidArgument } from '../errors';

/** A Redis URL (redis://[user:password@]host:port[/db], rediss:// for TLS) or ioredis connection options. */
export type QueueConnection = string | ConnectionOptions;

/** The queue every `bia queue` command and `bia worker` use unless told otherwise. */
export const DEFAULT_QUEUE_NAME = 'bia-erase';
/** The Redis of `--redis` when neither the flag nor BIA_REDIS is given. */
export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

/** A Redis URL → ioredis options; options pass through. BIA_INVALID_ARGUMENT for a malformed URL. */
export function connectionOptions(c: QueueConnection): ConnectionOptions {
  if (typeof c !== 'string') {
    if (c === null || typeof c !== 'object') throw invalidArgument('connection must be a Redis URL (redis://host:port) or ioredis options');
    return c;
  }
  let u: URL;
  try {
    u = new URL(c);
  } catch {
    throw invalidArgument(`the Redis address must be a URL redis://host:port[/db], got '${c}'`);
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') throw invalidArgument(`the Redis address must start with redis:// or rediss://, got '${c}'`);
  const port = u.port ? Number(u.port) : 6379;
  const path = u.pathname.replace(/^\/+/, '');
  const db = path === '' ? undefined : Number(path);
  if (db !== undefined && !(Number.isInteger(db) && db >= 0)) throw invalidArgument(`the Redis database in '${c}' must be a number (redis://host:port/0)`);
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1',
    port,
    ...(db !== undefined ? { db } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  } as ConnectionOptions;
}

/** The connection for messages: a URL without its password. */
export function describeConnection(c: QueueConnection): string {
  if (typeof c === 'string') {
    try {
      const u = new URL(c);
      if (u.password) u.password = '***';
      return u.toString().replace(/\/$/, '');
    } catch {
      return c;
    }
  }
  const o = c as { host?: string; port?: number; db?: number; path?: string };
  if (o.path) return `redis+unix://${o.path}`;
  return `redis://${o.host ?? '127.0.0.1'}:${o.port ?? 6379}${o.db ? `/${o.db}` : ''}`;
}

export function checkQueueName(name: unknown): string {
  if (typeof name !== 'string' || !/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(name)) {
    throw invalidArgument(`the queue name must be 1–100 letters, digits, '.', '_' or '-' (no ':'), got ${JSON.stringify(name)}`);
  }
  return name;
}

/**
 * Wait until a BullMQ queue or worker has reached Redis, or reject after `timeoutMs` with
 * BIA_IO_ERROR naming the address (the client goes on retrying in the background until closed).
 */
export async function reachRedis(q: Pick<Queue, 'waitUntilReady'>, conn: QueueConnection, timeoutMs = 10_000, lastError?: () => Error | undefined): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      q.waitUntilReady(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const why = lastError?.()?.message;
          reject(new BiaError('BIA_IO_ERROR', `cannot reach Redis at ${describeConnection(conn)}${why ? ` (${why})` : ''} within ${Math.round(timeoutMs / 1000)} s: is redis-server running there?`));
        }, timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
