import { Logger } from '@nestjs/common';
import type { CheckpointRepository } from '../checkpoint.repository.js';
import { CHANGE_POLL_MS } from './connection-mode.js';
import type { SessionSql } from './session.sql.js';

/** Every this many reads, the reader also deletes announcements older than a minute. */
const PURGE_EVERY = 120;

/**
 * What changed, read by one statement per process every CHANGE_POLL_MS, where no process can
 * LISTEN (a transaction pooler without a direct URL): however many watchers and attempts the
 * process has, they share this one read. Runs from the first subscriber to close().
 */
export class ChangePoll {
  private readonly logger = new Logger('Checkpoint');
  private horizon: string | null = null;
  /** Ids delivered whose transaction the horizon has not passed yet: id -> xid. */
  private readonly seen = new Map<string, bigint>();
  private timer?: NodeJS.Timeout;
  private starting?: Promise<void>;
  private busy = false;
  private reads = 0;
  private stopped = false;

  constructor(
    private readonly repository: CheckpointRepository,
    private readonly sql: SessionSql,
    private readonly deliver: (channel: string, payload: string) => void,
  ) {}

  /** Starts reading (once): resolves after the first read, from which changes are delivered. */
  start(): Promise<void> {
    this.starting ??= this.read().then(
      () => {
        if (this.stopped) return;
        this.timer = setInterval(() => {
          this.read().catch((error: Error) =>
            this.logger.warn(`could not read what changed: ${error.message}`),
          );
        }, CHANGE_POLL_MS).unref();
      },
      (error: unknown) => {
        this.starting = undefined;
        throw error;
      },
    );
    return this.starting;
  }

  stop(): void {
    this.stopped = true;
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private async read(): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      const { rows } = await this.repository.run<{
        horizon: string;
        id: string | null;
        xid: string | null;
        channel: string | null;
        payload: string | null;
      }>('watch', undefined, this.sql.pollChanges(this.horizon));
      for (const row of rows) {
        if (row.id === null || row.xid === null || row.channel === null || row.payload === null)
          continue;
        if (this.seen.has(row.id)) continue;
        this.seen.set(row.id, BigInt(row.xid));
        if (this.horizon !== null) this.deliver(row.channel, row.payload);
      }
      const horizon = rows[0]?.horizon;
      if (horizon !== undefined) {
        this.horizon = horizon;
        const passed = BigInt(horizon);
        for (const [id, xid] of this.seen) if (xid < passed) this.seen.delete(id);
      }
      if (++this.reads % PURGE_EVERY === 0)
        await this.repository.run('watch', undefined, this.sql.purgeChanges());
    } finally {
      this.busy = false;
    }
  }
}
