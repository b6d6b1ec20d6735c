import type { Pool, PoolClient } from 'pg';
import type { DataSource } from 'typeorm';
import { messages } from '../checkpoint.messages.js';
import type { Pooling, ResolvedCheckpointOptions } from '../checkpoint.options.js';

/** Injection token of the process's ConnectionMode (resolved at bootstrap). */
export const CHECKPOINT_CONNECTION = Symbol('checkpoint:connection');

/** How often a process without LISTEN reads what changed (watch, control): one statement. */
export const CHANGE_POLL_MS = 500;

/** The connection set-up this process runs in (see docs/connections.md). */
export interface ConnectionMode {
  pooling: Pooling;
  /** Transaction pooling only: PostgreSQL without the pooler, for the lease session and LISTEN. */
  directUrl?: string;
  /** How the pooling was learnt: the option, or what bootstrap saw. */
  source: string;
}

/** The lease session, LISTEN and session settings are there: all but a bare transaction pooler. */
export function hasSession(mode: ConnectionMode): boolean {
  return mode.pooling !== 'transaction' || mode.directUrl !== undefined;
}

/**
 * The pooling from the option, or detected: the server sees another client port than this
 * process's socket has (a pooler or a proxy is in between), and two client connections held at
 * once share a server connection (only a transaction or statement pooler does that). A proxy or
 * a session pooler, told apart by nothing, both run as `session` (correct for either).
 */
export async function resolveConnectionMode(
  dataSource: DataSource,
  options: ResolvedCheckpointOptions,
): Promise<ConnectionMode> {
  const { pooling, directUrl } = options.connection;
  if (pooling !== undefined) return { pooling, directUrl, source: 'option connection.pooling' };
  const pool = (dataSource.driver as { master?: Pool }).master;
  if (pool === undefined) throw new Error(messages.dataSourceNotConnected());
  const first = await pool.connect();
  let second: PoolClient | undefined;
  try {
    const { rows } = await first.query<{ port: number | null }>(
      'SELECT inet_client_port() AS port',
    );
    const local = (first as unknown as { connection?: { stream?: { localPort?: number } } })
      .connection?.stream?.localPort;
    if ((rows[0]?.port ?? undefined) === local)
      return { pooling: 'none', source: 'detected: the server sees this process’s own socket' };
    // A pool of one cannot hold two connections: no probe, the safe set-up.
    if ((pool.options.max ?? 10) < 2)
      return {
        pooling: 'transaction',
        source: 'detected: a pooler or proxy; pool too small to probe',
      };
    second = await pool.connect();
    for (let probe = 0; probe < 3; probe++) {
      const pid = async (client: PoolClient) =>
        (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      if ((await pid(first)) === (await pid(second)))
        return {
          pooling: 'transaction',
          source: 'detected: two clients shared a server connection',
        };
    }
    return { pooling: 'session', source: 'detected: a session pooler or a proxy in between' };
  } finally {
    first.release();
    second?.release();
  }
}

/** The bootstrap line: the set-up and what it costs. */
export function describeConnectionMode(mode: ConnectionMode, leaseTtlMs: number): string {
  const how = `(${mode.source})`;
  switch (mode.pooling) {
    case 'none':
      return `connection: direct ${how}; a dead owner is detected at once (its session leaves pg_stat_activity); watch and control by LISTEN`;
    case 'session':
      return (
        `connection: session pooling ${how}; a dead owner is detected as soon as the pooler resets its server connection ` +
        `(server_reset_query DISCARD ALL drops the lease session's advisory lock); watch and control by LISTEN`
      );
    case 'transaction':
      return mode.directUrl === undefined
        ? `connection: transaction pooling without a direct URL ${how}; unnamed statements; a dead owner is detected by lease expiry, ` +
            `after up to ${leaseTtlMs} ms (option leaseTtlMs); watch and control by one shared poll every ${CHANGE_POLL_MS} ms; ` +
            'concurrent index migrations run in their blocking form'
        : `connection: transaction pooling with a direct URL ${how}; unnamed statements through the pooler; the lease session ` +
            'and LISTEN on the direct URL: a dead owner is detected at once; concurrent index migrations run in their blocking form';
  }
}
