import type { Notification, PoolClient } from 'pg';
import type { DataSource, QueryRunner } from 'typeorm';
import { CheckpointStoreError } from '../checkpoint.errors.js';
import type { CheckpointRepository } from '../checkpoint.repository.js';
import { withTimeout } from '../with-timeout.js';
import type { ConnectionMode } from './connection-mode.js';
import type { SessionIdentity, SessionTiming } from './session-identity.js';

/** A connection held for the lease session, with the identity its leases record. */
export interface LeaseConnection {
  runner: QueryRunner;
  client: PoolClient;
  identity: SessionIdentity;
  /** Removes the connection's listeners (before it goes back to the pool). */
  detach: () => void;
}

/** What the lease session hears from its connection. */
export interface LeaseConnectionEvents {
  /** The connection failed or ended; called once, maybe before openLeaseConnection returns. */
  lost(runner: QueryRunner, reason: string): void;
  /** A NOTIFY on the progress or the control channel. */
  notification(channel: 'control' | 'progress', payload: string): void;
}

/**
 * Borrows a connection from `source`, listens for its loss and its notifications, reads its
 * identity (backend pid and start time) and sets its socket probes, all within the lease TTL:
 * a connection that never comes is a lost one.
 */
export async function openLeaseConnection(
  source: DataSource,
  repository: CheckpointRepository,
  mode: ConnectionMode,
  timing: SessionTiming,
  events: LeaseConnectionEvents,
): Promise<LeaseConnection> {
  let runner: QueryRunner;
  let client: PoolClient;
  try {
    runner = source.createQueryRunner('master');
    const borrowed = runner;
    client = await withTimeout(
      runner.connect() as Promise<PoolClient>,
      timing.leaseTtlMs,
      // isConnectionFailure knows this message: a connection that never came is a lost one.
      `no connection within ${timing.leaseTtlMs} ms`,
      () => void borrowed.release().catch(() => undefined),
    );
  } catch (error) {
    throw new CheckpointStoreError('session', undefined, error);
  }
  let lost = false;
  const onLost = (reason: string) => {
    if (lost) return;
    lost = true;
    events.lost(runner, reason);
  };
  const onError = (error: Error) => onLost(error.message);
  const onEnd = () => onLost('connection ended');
  const onNotification = (message: Notification) => {
    if (message.payload === undefined) return;
    const control = message.channel.endsWith('_checkpoint_control');
    events.notification(control ? 'control' : 'progress', message.payload);
  };
  client.on('error', onError);
  client.on('end', onEnd);
  client.on('notification', onNotification);
  const detach = () => {
    client.off('error', onError);
    client.off('end', onEnd);
    client.off('notification', onNotification);
  };
  try {
    const ttl = timing.leaseTtlMs;
    const { rows } = await repository.run<{ pid: number; started: string | null }>(
      'session',
      undefined,
      repository.sql.sessionIdentity(
        mode.pooling === 'session',
        Math.max(1, Math.floor(ttl / 3000)),
        Math.max(1, Math.floor(ttl / 9000)),
        ttl,
      ),
      runner,
    );
    const row = rows[0];
    if (row === undefined || row.started === null) {
      throw new Error('the lease session cannot read its own backend_start');
    }
    return { runner, client, identity: { pid: row.pid, started: row.started }, detach };
  } catch (error) {
    detach();
    lost = true;
    await runner.release().catch(() => undefined);
    throw error instanceof CheckpointStoreError
      ? error
      : new CheckpointStoreError('session', undefined, error);
  }
}
