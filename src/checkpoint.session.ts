import { Logger } from '@nestjs/common';
import type { PoolClient } from 'pg';
import { DataSource, type QueryRunner } from 'typeorm';
import type { CheckpointControl } from './checkpoint.constants.js';
import { CheckpointStoreError } from './checkpoint.errors.js';
import type { CheckpointRepository, QueryOutcome } from './checkpoint.repository.js';
import type { Query } from './checkpoint.sql.js';
import { ChangePoll } from './session/change-poll.js';
import {
  describeConnectionMode,
  hasSession,
  type ConnectionMode,
} from './session/connection-mode.js';
import { openLeaseConnection } from './session/lease-connection.js';
import { PendingAnnouncements, type Announced } from './session/pending-announcements.js';
import { sessionSql } from './session/session.sql.js';
import { WatcherPresence } from './session/watcher-presence.js';
import {
  NO_SESSION,
  type SessionIdentity,
  type SessionTiming,
} from './session/session-identity.js';

/** How often changed keys are announced to watchers in other processes. */
const NOTIFY_INTERVAL_MS = 100;
/** Backoff between reconnection attempts of a lost session: short, so leases are re-asserted fast. */
const RECONNECT_FIRST_MS = 50;
const RECONNECT_MAX_MS = 500;

/**
 * The process's one dedicated database session, borrowed from the host's TypeORM pool for the
 * life of the application. Its identity (backend pid and start time) is what the rows of the
 * leases it owns record, so that any process can tell a dead owner from a live one in
 * pg_stat_activity. It renews those leases, listens for progress notifications, and sends them.
 *
 * When the session is lost in a live process (pg_terminate_backend, a pooler or database
 * restart) it reconnects with a short backoff and tells its `onRestore` listeners, which
 * re-assert the leases under the new identity: the attempts go on without noticing.
 *
 * Through a transaction pooler the session lives on the direct URL when there is one. Without
 * one there is no session: statements go through the pool one by one, the identity is empty
 * (leases end by expiry only), and announcements are rows that a shared poll reads (ChangePoll).
 *
 * Notifications are coalesced: an advance only marks its key as changed, and a timer announces
 * all changed keys in one statement at most every NOTIFY_INTERVAL_MS. NOTIFY serialises commits
 * on a global lock, so sending one per advance would cap throughput; this keeps it off the
 * batch's path entirely. A key whose progress alone moved is announced only while some process
 * watches (the `watcher` table, where a process keeps a row while it has subscribers): a fleet
 * nobody watches notifies nothing of its advances, and after a look that found no watcher its
 * advances wait a second for the next look instead of a statement every 100 ms. Every other
 * change (a claim, the end of an attempt, an operator's request) is always announced.
 */
export class CheckpointSession {
  private readonly logger = new Logger('Checkpoint');
  private runner?: QueryRunner;
  private client?: PoolClient;
  private current?: SessionIdentity;
  private opening?: Promise<QueryRunner>;
  private reconnecting = false;
  /** The channels this session LISTENs on (a new connection listens on none). */
  private readonly listening = { progress: false, control: false };
  /** Keys to announce, and operators' requests to record for polling processes. */
  private readonly pending = new PendingAnnouncements(() => void this.flush());
  /** This process in the `watcher` table while it has subscribers. */
  private readonly presence: WatcherPresence;
  /** No lease session, no LISTEN: a transaction pooler without a direct URL. */
  private readonly sessionless: boolean;
  private readonly poll?: ChangePoll;
  /** The direct URL's own pool of one connection, for the lease session. */
  private direct?: Promise<DataSource>;
  private readonly lossListeners = new Set<(reason: string) => void>();
  private readonly restoreListeners = new Set<(identity: SessionIdentity) => void>();
  private readonly notificationListeners = new Set<(key: string) => void>();
  private readonly controlListeners = new Set<(action: string, key: string) => void>();
  private closed = false;
  private lostReason?: string;
  private tail: Promise<unknown> = Promise.resolve();
  private detach?: () => void;

  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: CheckpointRepository,
    private readonly timing: SessionTiming,
    private readonly mode: ConnectionMode = { pooling: 'none', source: 'default' },
  ) {
    this.sessionless = !hasSession(mode);
    this.presence = new WatcherPresence({
      watching: (process, seconds) => repository.sql.watching(process, seconds),
      unwatch: (process) => repository.sql.unwatch(process),
      send: (query) => this.query('watch', undefined, query),
    });
    if (this.sessionless)
      this.poll = new ChangePoll(
        repository,
        sessionSql(repository.sql.schema),
        (channel, payload) => this.deliver(channel, payload),
      );
  }

  /** Says at bootstrap which connection set-up the process runs in, and what it costs. */
  onApplicationBootstrap(): void {
    this.logger.log(describeConnectionMode(this.mode, this.timing.leaseTtlMs));
  }

  /** The identity of the lease session, opening (or reopening) it when needed. */
  async identity(): Promise<SessionIdentity> {
    if (this.sessionless) return NO_SESSION;
    for (;;) {
      const runner = await this.open();
      const identity = this.current;
      if (identity !== undefined && this.runner === runner) return identity;
    }
  }

  /**
   * Renews the given leases (and re-asserts them under this session's identity) in one
   * statement; returns the keys it renewed, each with the operator's request on it (or null).
   */
  async renew(keys: string[], epochs: number[]): Promise<Map<string, CheckpointControl | null>> {
    const identity = await this.identity();
    const { rows } = await this.query<{ key: string; control: CheckpointControl | null }>(
      'renew',
      undefined,
      this.repository.sql.renew(
        keys,
        epochs,
        identity.pid,
        identity.started,
        this.timing.leaseTtlMs,
      ),
    );
    return new Map(rows.map((row) => [row.key, row.control]));
  }

  /** Called with a reason when the session is lost for good (reconnection gave up). */
  onLoss(listener: (reason: string) => void): () => void {
    this.lossListeners.add(listener);
    return () => this.lossListeners.delete(listener);
  }

  /** Called with the new identity after a lost session was replaced. */
  onRestore(listener: (identity: SessionIdentity) => void): () => void {
    this.restoreListeners.add(listener);
    return () => this.restoreListeners.delete(listener);
  }

  /**
   * Marks a key as changed; watchers everywhere hear of it within NOTIFY_INTERVAL_MS. `progress`:
   * only its progress moved (an advance), which is announced only while some process watches.
   */
  announce(key: string, what: Announced = 'change'): void {
    if (this.closed) return;
    this.pending.add(key, what);
    // A change goes within the interval even while advances wait out a quiet second.
    if (what === 'change' || !this.pending.scheduled) this.pending.flushWithin(NOTIFY_INTERVAL_MS);
  }

  /**
   * Subscribes to keys changed in any process; LISTENs on first use and UNLISTENs when the last
   * subscriber leaves, so that a worker nobody watches from receives no one's progress. The
   * process's `watcher` row is written before the LISTEN: every flush that reads no such row
   * committed before the subscriber's first read, which sees what it would have announced.
   */
  async subscribe(listener: (key: string) => void): Promise<() => void> {
    this.notificationListeners.add(listener);
    try {
      await this.presence.start();
      await this.ensureListening('progress');
    } catch (error) {
      this.unsubscribe(listener);
      throw error;
    }
    return () => this.unsubscribe(listener);
  }

  private unsubscribe(listener: (key: string) => void): void {
    this.notificationListeners.delete(listener);
    if (this.notificationListeners.size > 0) return;
    void this.presence.stop();
    if (!this.listening.progress) return;
    // The session runs its statements in order: a LISTEN asked for later comes after this.
    this.listening.progress = false;
    void this.query('watch', undefined, this.repository.sql.unlisten('progress')).catch(
      (error: Error) => this.logger.warn(`could not stop listening: ${error.message}`),
    );
  }

  private async ensureListening(which: 'progress' | 'control'): Promise<void> {
    if (this.poll !== undefined) return this.poll.start();
    if (this.listening[which]) return;
    this.listening[which] = true;
    try {
      await this.query('watch', undefined, this.repository.sql.listen(which));
    } catch (error) {
      this.listening[which] = false;
      throw error;
    }
  }

  /**
   * Subscribes to operators' requests (`pause`, `cancel`, `resume` of a key) made in any process;
   * LISTENs on first use.
   */
  async subscribeControl(listener: (action: string, key: string) => void): Promise<() => void> {
    this.controlListeners.add(listener);
    await this.ensureListening('control');
    return () => this.controlListeners.delete(listener);
  }

  /**
   * An operator's request made by this process, for processes that poll (they cannot hear the
   * statement's NOTIFY); sent with the next announcements. Nothing to do where LISTEN works.
   */
  announceControl(action: string, key: string): void {
    if (this.poll === undefined || this.closed) return;
    this.pending.addControl(`${action}:${key}`);
    this.pending.flushWithin(NOTIFY_INTERVAL_MS);
  }

  /** Why the session was lost, while it is and no new one has been opened; else undefined. */
  get lost(): string | undefined {
    return this.lostReason;
  }

  /** One round trip on the session, opening a new one if it was lost (health checks). */
  async ping(): Promise<void> {
    await this.query('health', undefined, this.repository.sql.ping());
  }

  /**
   * Drops the connection as if it were lost (a statement on it hangs: a silent partition), so
   * that the session reconnects instead of waiting for the kernel to notice.
   */
  abandonConnection(reason: string): void {
    const client = this.client;
    if (client === undefined) return;
    this.logger.warn(`dropping the checkpoint session: ${reason}`);
    // Ends the socket without waiting for the server: error/end listeners take it from there.
    (
      client as unknown as { connection?: { stream?: { destroy: (e?: Error) => void } } }
    ).connection?.stream?.destroy(new Error(reason));
  }

  /** Sends pending notifications and returns the session to the pool. */
  async close(): Promise<void> {
    await this.flush(true);
    await this.presence.stop();
    this.closed = true;
    this.poll?.stop();
    const runner = this.runner;
    this.runner = undefined;
    this.current = undefined;
    if (runner === undefined || runner.isReleased) return;
    this.detach?.();
    // The connection goes back to the host's pool: it must keep no LISTEN and no socket probes.
    try {
      await this.query('close', undefined, this.repository.sql.resetSession(), runner);
    } finally {
      await runner.release();
      if (this.direct !== undefined) await (await this.direct).destroy();
    }
  }

  /**
   * Announces what is pending in one statement; advances alone wait while nobody watched at the
   * last look (see PendingAnnouncements), unless `force` (close).
   */
  private async flush(force = false): Promise<void> {
    this.pending.flushing();
    const batch = this.pending.take(Date.now(), this.notificationListeners.size > 0, force);
    if (batch === undefined) return;
    if ('waitMs' in batch) {
      this.pending.flushWithin(batch.waitMs);
      return;
    }
    const { keys, advanced, controls } = batch;
    try {
      const channels = [...keys.map(() => 'progress'), ...controls.map(() => 'control')];
      const statement =
        this.poll === undefined
          ? this.repository.sql.notify(keys, advanced)
          : sessionSql(this.repository.sql.schema).recordChanges(
              channels,
              [...keys, ...controls],
              advanced,
            );
      const { rows } = await this.query<{ watched: boolean }>('notify', undefined, statement);
      this.pending.looked(rows[0]?.watched === true, Date.now());
    } catch (error) {
      // Progress notifications are best effort: watchers re-read after their last change anyway.
      this.logger.warn(`could not announce progress: ${(error as Error).message}`);
    }
  }

  /**
   * Runs one statement on the session. A connection takes one query at a time (pg deprecates
   * queueing on a busy client), so statements wait for the one before them.
   */
  private query<R>(
    operation: string,
    key: string | undefined,
    query: Query,
    runner?: QueryRunner,
  ): Promise<QueryOutcome<R>> {
    const result = this.tail.then(async () =>
      this.repository.run<R>(
        operation,
        key,
        query,
        runner ?? (this.sessionless ? undefined : await this.open()),
      ),
    );
    this.tail = result.catch(() => undefined);
    return result;
  }

  private open(): Promise<QueryRunner> {
    if (this.closed) {
      return Promise.reject(
        new CheckpointStoreError('session', undefined, new Error('the module is closed')),
      );
    }
    if (this.runner !== undefined && !this.runner.isReleased && this.current !== undefined) {
      return Promise.resolve(this.runner);
    }
    this.opening ??= this.connect().finally(() => (this.opening = undefined));
    return this.opening;
  }

  /** The DataSource the lease session borrows from: the host's, or the direct URL's own. */
  private leaseSource(): Promise<DataSource> {
    const url = this.mode.directUrl;
    if (url === undefined) return Promise.resolve(this.dataSource);
    this.direct ??= new DataSource({ type: 'postgres', url, poolSize: 1 })
      .initialize()
      .catch((error: unknown) => {
        this.direct = undefined;
        throw error;
      });
    return this.direct;
  }

  /** Borrows a connection for the lease session (see openLeaseConnection) and makes it current. */
  private async connect(): Promise<QueryRunner> {
    let source: DataSource;
    try {
      source = await this.leaseSource();
    } catch (error) {
      throw new CheckpointStoreError('session', undefined, error);
    }
    const connection = await openLeaseConnection(source, this.repository, this.mode, this.timing, {
      lost: (runner, reason) => this.connectionLost(runner, reason),
      notification: (channel, payload) => this.deliver(channel, payload),
    });
    this.detach = connection.detach;
    this.runner = connection.runner;
    this.client = connection.client;
    this.current = connection.identity;
    this.lostReason = undefined;
    return connection.runner;
  }

  /** A lease connection failed or ended: forget it if it is current, and reconnect. */
  private connectionLost(runner: QueryRunner, reason: string): void {
    this.detach?.();
    if (this.runner === runner) {
      this.runner = undefined;
      this.client = undefined;
      this.current = undefined;
      this.listening.progress = false;
      this.listening.control = false;
    }
    void runner.release().catch(() => undefined);
    if (this.closed) return;
    this.lostReason = reason;
    this.logger.warn(`the checkpoint session was lost (${reason}); reconnecting`);
    void this.reconnect();
  }

  /** Hands a notification (or a polled change) to the listeners of its channel. */
  private deliver(channel: string, payload: string): void {
    if (channel === 'control') {
      const colon = payload.indexOf(':');
      for (const listener of this.controlListeners)
        listener(payload.slice(0, colon), payload.slice(colon + 1));
      return;
    }
    for (const listener of this.notificationListeners) listener(payload);
  }

  /**
   * Replaces a lost session with a short, bounded backoff; then LISTENs again for watchers and
   * tells the restore listeners (who re-assert the leases). Gives up after `reconnectForMs`.
   */
  private async reconnect(): Promise<void> {
    if (this.reconnecting) return;
    this.reconnecting = true;
    const deadline = Date.now() + this.timing.reconnectForMs;
    let delay = RECONNECT_FIRST_MS;
    let lastError: unknown;
    try {
      while (!this.closed) {
        try {
          await this.open();
          const identity = this.current;
          if (identity === undefined) continue;
          const wanted = {
            progress: this.notificationListeners.size > 0,
            control: this.controlListeners.size > 0,
          };
          for (const which of ['progress', 'control'] as const) {
            if (!wanted[which] || this.listening[which]) continue;
            this.listening[which] = true;
            await this.query('watch', undefined, this.repository.sql.listen(which)).catch(
              (error: Error) => {
                this.listening[which] = false;
                this.logger.warn(`could not listen again: ${error.message}`);
              },
            );
          }
          this.logger.log(`the checkpoint session is back (backend ${identity.pid})`);
          for (const listener of this.restoreListeners) listener(identity);
          return;
        } catch (error) {
          lastError = error;
          if (Date.now() + delay > deadline) break;
          await sleep(delay);
          delay = Math.min(RECONNECT_MAX_MS, delay * 2);
        }
      }
      if (this.closed) return;
      const reason = lastError instanceof Error ? lastError.message : String(lastError);
      this.logger.error(
        `the checkpoint session could not reconnect within ${this.timing.reconnectForMs} ms (${reason}); its leases are given up`,
      );
      for (const listener of this.lossListeners) listener(reason);
    } finally {
      this.reconnecting = false;
    }
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
