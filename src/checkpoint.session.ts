import { Logger } from '@nestjs/common';
import type { Notification, PoolClient } from 'pg';
import type { DataSource, QueryRunner } from 'typeorm';
import type { CheckpointRepository, QueryOutcome } from './checkpoint.repository.js';
import type { Query } from './checkpoint.sql.js';

/** How often changed keys are announced to watchers in other processes. */
const NOTIFY_INTERVAL_MS = 100;

/**
 * The process's one dedicated database session, borrowed from the host's TypeORM pool for the
 * life of the application. It holds the session-level advisory locks that make leases (a lease
 * is exactly as alive as this session), listens for progress notifications, and sends them.
 *
 * Notifications are coalesced: an advance only marks its key as changed, and a timer announces
 * all changed keys in one statement at most every NOTIFY_INTERVAL_MS. NOTIFY serialises commits
 * on a global lock, so sending one per advance would cap throughput; this keeps it off the
 * batch's path entirely.
 */
export class CheckpointSession {
  private readonly logger = new Logger('Checkpoint');
  private runner?: QueryRunner;
  private opening?: Promise<QueryRunner>;
  private listening = false;
  private readonly changed = new Set<string>();
  private flushTimer?: NodeJS.Timeout;
  private readonly lossListeners = new Set<(reason: string) => void>();
  private readonly notificationListeners = new Set<(key: string) => void>();
  private readonly controlListeners = new Set<(action: string, key: string) => void>();
  private closed = false;
  private lostReason?: string;
  private tail: Promise<unknown> = Promise.resolve();
  private detach?: () => void;

  constructor(
    private readonly dataSource: DataSource,
    private readonly repository: CheckpointRepository,
  ) {}

  /** Tries to take the lease of `key` on this session; true when it is ours. Re-entrant. */
  async tryLock(key: string): Promise<boolean> {
    const { rows } = await this.query<{ locked: boolean }>(
      'claim',
      key,
      this.repository.sql.tryLock(key),
    );
    return rows[0]?.locked === true;
  }

  /** Gives the lease of `key` back; a lost session has already given it back. */
  async unlock(key: string): Promise<void> {
    const runner = this.runner;
    if (runner === undefined || runner.isReleased) return;
    await this.query('release', key, this.repository.sql.unlock(key), runner);
  }

  /** Called with a reason when the session is lost: every lease it held is gone. */
  onLoss(listener: (reason: string) => void): () => void {
    this.lossListeners.add(listener);
    return () => this.lossListeners.delete(listener);
  }

  /** Marks a key as changed; watchers everywhere hear of it within NOTIFY_INTERVAL_MS. */
  announce(key: string): void {
    if (this.closed) return;
    this.changed.add(key);
    this.flushTimer ??= setTimeout(() => void this.flush(), NOTIFY_INTERVAL_MS).unref();
  }

  /** Subscribes to keys changed in any process; LISTENs on first use. */
  async subscribe(listener: (key: string) => void): Promise<() => void> {
    this.notificationListeners.add(listener);
    await this.ensureListening();
    return () => this.notificationListeners.delete(listener);
  }

  private async ensureListening(): Promise<void> {
    if (this.listening) return;
    this.listening = true;
    try {
      await this.query('watch', undefined, this.repository.sql.listen());
    } catch (error) {
      this.listening = false;
      throw error;
    }
  }

  /**
   * Subscribes to operators' requests (`pause`, `cancel`, `resume` of a key) made in any process;
   * LISTENs on first use.
   */
  async subscribeControl(listener: (action: string, key: string) => void): Promise<() => void> {
    this.controlListeners.add(listener);
    await this.ensureListening();
    return () => this.controlListeners.delete(listener);
  }

  /** Why the session was lost, while it is and no new one has been opened; else undefined. */
  get lost(): string | undefined {
    return this.lostReason;
  }

  /** One round trip on the session, opening a new one if it was lost (health checks). */
  async ping(): Promise<void> {
    await this.query('health', undefined, this.repository.sql.ping());
  }

  /** Sends pending notifications and returns the session to the pool. */
  async close(): Promise<void> {
    await this.flush();
    this.closed = true;
    const runner = this.runner;
    this.runner = undefined;
    if (runner === undefined || runner.isReleased) return;
    this.detach?.();
    // The connection goes back to the host's pool: it must keep no lock and no LISTEN.
    await this.query('close', undefined, this.repository.sql.resetSession(), runner);
    await runner.release();
  }

  private async flush(): Promise<void> {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.changed.size === 0) return;
    const keys = [...this.changed];
    this.changed.clear();
    try {
      await this.query('notify', undefined, this.repository.sql.notify(keys));
    } catch (error) {
      // Progress notifications are best effort: watchers catch up at the next change.
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
      this.repository.run<R>(operation, key, query, runner ?? (await this.open())),
    );
    this.tail = result.catch(() => undefined);
    return result;
  }

  private open(): Promise<QueryRunner> {
    if (this.runner !== undefined && !this.runner.isReleased) return Promise.resolve(this.runner);
    this.opening ??= this.connect().finally(() => (this.opening = undefined));
    return this.opening;
  }

  private async connect(): Promise<QueryRunner> {
    const runner = this.dataSource.createQueryRunner('master');
    const client = (await runner.connect()) as PoolClient;
    let lost = false;
    const onLost = (reason: string) => {
      if (lost) return;
      lost = true;
      if (this.runner === runner) {
        this.runner = undefined;
        this.listening = false;
      }
      if (this.closed) return;
      this.lostReason = reason;
      this.logger.error(`the checkpoint session was lost (${reason}); its leases are gone`);
      for (const listener of this.lossListeners) listener(reason);
      // Watchers must LISTEN again on a new session.
      if (this.notificationListeners.size > 0 || this.controlListeners.size > 0) {
        this.listening = true;
        this.query('watch', undefined, this.repository.sql.listen()).catch((error: Error) =>
          this.logger.warn(`could not listen again: ${error.message}`),
        );
      }
    };
    const onError = (error: Error) => onLost(error.message);
    const onEnd = () => onLost('connection ended');
    const onNotification = (message: Notification) => {
      const payload = message.payload;
      if (payload === undefined) return;
      if (message.channel.endsWith('_checkpoint_control')) {
        const colon = payload.indexOf(':');
        for (const listener of this.controlListeners)
          listener(payload.slice(0, colon), payload.slice(colon + 1));
        return;
      }
      for (const listener of this.notificationListeners) listener(payload);
    };
    client.on('error', onError);
    client.on('end', onEnd);
    client.on('notification', onNotification);
    this.detach = () => {
      client.off('error', onError);
      client.off('end', onEnd);
      client.off('notification', onNotification);
    };
    this.runner = runner;
    this.lostReason = undefined;
    return runner;
  }
}
