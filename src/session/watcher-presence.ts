import { Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Query } from '../checkpoint.sql.js';

/** A watching process's row lives this long, and is renewed three times as often. */
const WATCHING_SECONDS = 30;

/** The statements it sends (CheckpointSql's), and how it sends them (on the lease session). */
export interface PresenceStatements {
  watching(process: string, seconds: number): Query;
  unwatch(process: string): Query;
  send(query: Query): Promise<unknown>;
}

/**
 * This process's row in the `watcher` table while something in it watches progress: workers
 * announce advances only while such a row is live (see CheckpointSession.announce). Written
 * once for all of the process's subscribers, renewed every WATCHING_SECONDS / 3, deleted when the
 * last one leaves; a crashed watcher's row ends by itself.
 */
export class WatcherPresence {
  private readonly logger = new Logger('Checkpoint');
  private readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private timer?: NodeJS.Timeout;
  private written?: Promise<unknown>;

  constructor(private readonly statements: PresenceStatements) {}

  /** Writes the row (or waits for the write under way) and keeps it alive. */
  start(): Promise<unknown> {
    if (this.written !== undefined) return this.written;
    const write = () => this.statements.send(this.statements.watching(this.id, WATCHING_SECONDS));
    const written = write();
    this.written = written;
    this.timer = setInterval(
      () =>
        void write().catch((error: Error) =>
          this.logger.warn(`could not renew this process's watch: ${error.message}`),
        ),
      (WATCHING_SECONDS * 1000) / 3,
    ).unref();
    // A failed first write ends the presence: the next subscriber writes it again.
    written.catch(() => {
      if (this.written === written) void this.stop(false);
    });
    return written;
  }

  /** Stops renewing the row, and deletes it (`forget`, unless its write failed). */
  async stop(forget = true): Promise<void> {
    if (this.written === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
    this.written = undefined;
    if (!forget) return;
    await this.statements
      .send(this.statements.unwatch(this.id))
      .catch((error: Error) =>
        this.logger.warn(`could not end this process's watch: ${error.message}`),
      );
  }
}
